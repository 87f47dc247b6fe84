#!/usr/bin/env bash
# Debian/Ubuntu programs the tests drive for real: zbarimg (QR decoding) and dbus-daemon
# (Bluetooth-unavailable cases). Uses sudo when not run as root; does nothing if present.
set -euo pipefail
need=()
command -v zbarimg >/dev/null 2>&1 || need+=(zbar-tools)
command -v dbus-daemon >/dev/null 2>&1 || need+=(dbus)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
