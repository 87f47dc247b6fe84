#!/usr/bin/env bash
# Debian/Ubuntu programs the tests drive for real: zbarimg (QR decoding), dbus-daemon
# (Bluetooth-unavailable cases), haproxy (the tunnel-server cluster, tests/cluster) and Xvfb
# (the bridge's QR code window, tests/bridge/test_window.py).
# Uses sudo when not run as root; does nothing if present.
set -euo pipefail
need=()
command -v zbarimg >/dev/null 2>&1 || need+=(zbar-tools)
command -v dbus-daemon >/dev/null 2>&1 || need+=(dbus)
# haproxy lives in /usr/sbin, which an unprivileged user's PATH often lacks
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
# Xvfb: the bridge's QR code window is tested on a real (virtual) X server
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
