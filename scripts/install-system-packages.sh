#!/usr/bin/env bash
# Debian/Ubuntu programs the tests drive for real: zbarimg (QR decoding), dbus-daemon
# (Bluetooth-unavailable cases), haproxy (the tunnel-server cluster, tests/cluster), Xvfb (the
# bridge's QR code window, tests/bridge/test_window.py), and the VM that tests/vm boots for a
# kernel with uhid (tests/vm/harness.py): QEMU, a Debian kernel whose modules include uhid, a
# static busybox for virtme-ng's initramfs (vng itself is the `virtme-ng` PyPI package in the
# dev extra), and Firefox ESR, run headless in that VM.
# Uses sudo when not run as root; installs only what is missing.
set -euo pipefail
need=()
command -v zbarimg >/dev/null 2>&1 || need+=(zbar-tools)
command -v dbus-daemon >/dev/null 2>&1 || need+=(dbus)
# haproxy lives in /usr/sbin, which an unprivileged user's PATH often lacks
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
# static: vng copies it into the guest's initramfs, where no shared libraries are yet
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
    need+=(busybox-static)
# the guest loads uhid with the host's modprobe, from the host's /lib/modules
[ -x /sbin/modprobe ] || [ -x /usr/sbin/modprobe ] || need+=(kmod)
uhid_kernel=no
for vmlinuz in /boot/vmlinuz-*; do
    [ -e "$vmlinuz" ] || continue
    if compgen -G "/lib/modules/${vmlinuz#/boot/vmlinuz-}/kernel/drivers/hid/uhid.ko*" >/dev/null; then
        uhid_kernel=yes
    fi
done
[ "$uhid_kernel" = yes ] || need+=(linux-image-amd64)
command -v firefox-esr >/dev/null 2>&1 || need+=(firefox-esr)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
