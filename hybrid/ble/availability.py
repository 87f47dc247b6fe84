"""Why Bluetooth cannot be used: one mapping from every failure we have seen to a BluetoothReason.

bleak reports a switched-off or refused adapter as `BleakBluetoothNotAvailableError`, but on Linux
the commonest failures happen one layer lower, in D-Bus, and reach us as bare `OSError`s,
`BleakDBusError`s or dbus-fast errors. Users need the same answer whichever layer failed, and
the BlueZ advertiser needs the same classification, so it is written once here.
"""

from __future__ import annotations

import re

from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakError,
)

from hybrid.errors import BluetoothReason, BluetoothUnavailable

_BLEAK_REASONS: dict[BleakBluetoothNotAvailableReason, BluetoothReason] = {
    BleakBluetoothNotAvailableReason.NO_BLUETOOTH: BluetoothReason.NO_BLUETOOTH,
    BleakBluetoothNotAvailableReason.NO_BLE_CENTRAL_ROLE: BluetoothReason.NO_BLE_CENTRAL_ROLE,
    BleakBluetoothNotAvailableReason.POWERED_OFF: BluetoothReason.POWERED_OFF,
    BleakBluetoothNotAvailableReason.DENIED_BY_USER: BluetoothReason.DENIED_BY_USER,
    BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM: BluetoothReason.DENIED_BY_SYSTEM,
    BleakBluetoothNotAvailableReason.DENIED_BY_UNKNOWN: BluetoothReason.DENIED_BY_UNKNOWN,
    BleakBluetoothNotAvailableReason.UNKNOWN: BluetoothReason.UNKNOWN,
}

_DBUS = "org.freedesktop.DBus.Error."
_DBUS_ERRORS: dict[str, BluetoothReason] = {
    # Nobody owns org.bluez: bluetoothd is not running (or not installed).
    _DBUS + "ServiceUnknown": BluetoothReason.BLUEZ_NOT_RUNNING,
    _DBUS + "NameHasNoOwner": BluetoothReason.BLUEZ_NOT_RUNNING,
    # The bus policy refuses this user (not in the 'bluetooth' group, polkit said no).
    _DBUS + "AccessDenied": BluetoothReason.DBUS_PERMISSION_DENIED,
    _DBUS + "AuthFailed": BluetoothReason.DBUS_PERMISSION_DENIED,
    _DBUS + "InteractiveAuthorizationRequired": BluetoothReason.DBUS_PERMISSION_DENIED,
    # bluetoothd is there but does not answer.
    _DBUS + "NoReply": BluetoothReason.TIMEOUT,
    _DBUS + "Timeout": BluetoothReason.TIMEOUT,
    _DBUS + "TimedOut": BluetoothReason.TIMEOUT,
    # The adapter object vanished between listing and use (unplugged dongle).
    _DBUS + "UnknownObject": BluetoothReason.NO_BLUETOOTH,
    _DBUS + "UnknownInterface": BluetoothReason.NO_BLUETOOTH,
    _DBUS + "UnknownMethod": BluetoothReason.NO_BLUETOOTH,
    # BlueZ's answer to StartDiscovery on an adapter that is switched off or rfkill-blocked.
    "org.bluez.Error.NotReady": BluetoothReason.POWERED_OFF,
}
#: Bus activation of bluetooth.service failed (masked, disabled or crashing unit).
_NOT_RUNNING_PREFIXES = (_DBUS + "Spawn.", "org.freedesktop.systemd1.")

#: bleak's BlueZ backend raises a plain BleakError for a named adapter BlueZ does not know.
_NO_ADAPTER_TEXT = re.compile(r"adapter .*not found|no bluetooth adapters", re.IGNORECASE)


def dbus_error_reason(error_name: str) -> BluetoothReason | None:
    """The reason behind a D-Bus error name, or None when the name says nothing about Bluetooth."""
    if error_name in _DBUS_ERRORS:
        return _DBUS_ERRORS[error_name]
    if error_name.startswith(_NOT_RUNNING_PREFIXES):
        return BluetoothReason.BLUEZ_NOT_RUNNING
    return None


def _is_dbus_auth_error(exc: BaseException | None) -> bool:
    try:
        from dbus_fast.errors import AuthError
    except ImportError:  # not on Linux: dbus-fast is a Linux-only dependency of bleak
        return False
    return isinstance(exc, AuthError)


def _is_bad_bus_address(exc: BaseException) -> bool:
    try:
        from dbus_fast.errors import InvalidAddressError
    except ImportError:
        return False
    return isinstance(exc, InvalidAddressError)


def bluetooth_reason(exc: BaseException) -> BluetoothReason:
    """Classify a failure to reach Bluetooth (scanner start, D-Bus connect, BlueZ call)."""
    if isinstance(exc, BleakBluetoothNotAvailableError):
        # bleak calls a refused D-Bus login DENIED_BY_SYSTEM; the fix is the Linux one.
        if _is_dbus_auth_error(exc.__cause__):
            return BluetoothReason.DBUS_PERMISSION_DENIED
        return _BLEAK_REASONS.get(exc.reason, BluetoothReason.UNKNOWN)
    if isinstance(exc, BleakDBusError):
        return dbus_error_reason(exc.dbus_error) or BluetoothReason.UNKNOWN
    if isinstance(exc, BleakError):
        if _NO_ADAPTER_TEXT.search(str(exc)):
            return BluetoothReason.NO_BLUETOOTH
        return BluetoothReason.UNKNOWN
    if _is_dbus_auth_error(exc) or isinstance(exc, PermissionError):
        return BluetoothReason.DBUS_PERMISSION_DENIED
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError) or _is_bad_bus_address(exc):
        # No system bus socket (containers, minimal hosts), or nothing listening on it.
        return BluetoothReason.NO_DBUS
    if isinstance(exc, TimeoutError):
        return BluetoothReason.TIMEOUT
    return BluetoothReason.UNKNOWN


def bluetooth_unavailable(exc: BaseException) -> BluetoothUnavailable:
    """The BluetoothUnavailable to raise `from exc`; `detail` keeps the original text."""
    detail = str(exc) or type(exc).__name__
    return BluetoothUnavailable(bluetooth_reason(exc), detail)
