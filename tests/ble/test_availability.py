"""Bluetooth off, absent, refused or stuck: every way in gives BluetoothUnavailable and a reason.

The Linux cases run bleak's real BlueZ backend against real dbus-daemons (missing, stale, locked
down, without BlueZ, with a fake BlueZ); the OS-level reasons no machine here can produce come
from BumbleScannerBackend's `unavailable=` through the real BleakScanner.
"""

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakError,
)

from hybrid.ble import CableScanner, bluetooth_reason, check_bluetooth
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.errors import BluetoothReason, BluetoothUnavailable
from tests.ble.conftest import FakeAdapter, FakeBluez, StartBus

FakeBluezFactory = Callable[..., Any]


async def unavailable(scanner: CableScanner) -> BluetoothUnavailable:
    """Start `scanner`, expecting BluetoothUnavailable; a hang guard of 5 s, not a timing test."""
    with pytest.raises(BluetoothUnavailable) as info:
        await asyncio.wait_for(scanner.start(), 5)
    assert info.value.detail  # the original text is kept for bug reports
    assert info.value.__cause__ is not None
    return info.value


async def test_missing_system_bus_socket_is_no_dbus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no_socket'}")
    started = time.monotonic()
    error = await unavailable(CableScanner())
    elapsed = time.monotonic() - started
    assert error.reason is BluetoothReason.NO_DBUS
    assert isinstance(error.__cause__, FileNotFoundError)
    assert elapsed < 5, f"took {elapsed:.2f} s"  # hang guard only; it takes milliseconds


async def test_stale_system_bus_socket_is_no_dbus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "stale_socket"
    with socket.socket(socket.AF_UNIX) as sock:  # bound, then closed: nobody listens
        sock.bind(str(path))
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={path}")
    error = await unavailable(CableScanner())
    assert error.reason is BluetoothReason.NO_DBUS
    assert isinstance(error.__cause__, ConnectionRefusedError)


async def test_malformed_bus_address_is_no_dbus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "not-an-address")
    error = await unavailable(CableScanner())
    assert error.reason is BluetoothReason.NO_DBUS


async def test_bus_without_bluez_is_bluez_not_running(system_bus: str) -> None:
    error = await unavailable(CableScanner())
    assert error.reason is BluetoothReason.BLUEZ_NOT_RUNNING
    assert isinstance(error.__cause__, BleakDBusError)


async def test_bus_policy_denying_bluez_is_permission_denied(
    start_bus: StartBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = start_bus(policy='<deny send_destination="org.bluez"/>')
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
    bluez = FakeBluez({"hci0": FakeAdapter()})
    await bluez.start(address)  # BlueZ is there; the policy keeps us from it
    try:
        error = await unavailable(CableScanner())
    finally:
        await bluez.close()
    assert error.reason is BluetoothReason.DBUS_PERMISSION_DENIED
    assert isinstance(error.__cause__, BleakDBusError)


async def test_bus_refusing_our_login_is_permission_denied(
    start_bus: StartBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", start_bus(auth="ANONYMOUS"))
    error = await unavailable(CableScanner())
    # bleak calls this DENIED_BY_SYSTEM; the cure is the D-Bus one, so that is what we say.
    assert error.reason is BluetoothReason.DBUS_PERMISSION_DENIED
    assert isinstance(error.__cause__, BleakBluetoothNotAvailableError)


@pytest.mark.parametrize(
    ("adapters", "scanner_kwargs", "reason"),
    [
        ({}, None, BluetoothReason.NO_BLUETOOTH),
        ({"hci0": FakeAdapter(powered=False)}, None, BluetoothReason.POWERED_OFF),
        (
            {"hci0": FakeAdapter(roles=("peripheral",))},
            None,
            BluetoothReason.NO_BLE_CENTRAL_ROLE,
        ),
        ({"hci0": FakeAdapter()}, {"bluez": {"adapter": "hci3"}}, BluetoothReason.NO_BLUETOOTH),
    ],
    ids=["no-adapter", "powered-off", "no-central-role", "named-adapter-missing"],
)
async def test_bluez_adapter_problems(
    fake_bluez: FakeBluezFactory,
    adapters: dict[str, FakeAdapter],
    scanner_kwargs: dict[str, Any] | None,
    reason: BluetoothReason,
) -> None:
    await fake_bluez(adapters=adapters)
    error = await unavailable(CableScanner(scanner_kwargs=scanner_kwargs))
    assert error.reason is reason


async def test_check_bluetooth_passes_with_a_powered_adapter(fake_bluez: FakeBluezFactory) -> None:
    bluez: FakeBluez = await fake_bluez()
    await check_bluetooth(timeout=2)  # returns: scanning can start here
    adapter = bluez.adapters["hci0"]
    # Asked for every advert, not just each device's first; bleak clears the filter on stop.
    assert adapter.filter_calls[0]["DuplicateData"] is True
    assert adapter.filter_calls[1:] == [{}]
    assert not adapter.discovering  # started, then stopped again


async def test_check_bluetooth_raises_when_bluez_is_missing(system_bus: str) -> None:
    with pytest.raises(BluetoothUnavailable) as info:
        await check_bluetooth(timeout=2)
    assert info.value.reason is BluetoothReason.BLUEZ_NOT_RUNNING


@pytest.mark.parametrize("bleak_reason", list(BleakBluetoothNotAvailableReason))
async def test_every_bleak_reason_maps_through_the_real_bleak_scanner(
    bleak_reason: BleakBluetoothNotAvailableReason,
) -> None:
    scanner = CableScanner(BumbleScannerBackend, {"unavailable": bleak_reason})
    error = await unavailable(scanner)
    assert error.reason is BluetoothReason[bleak_reason.name]
    assert isinstance(error.__cause__, BleakBluetoothNotAvailableError)


async def test_start_that_never_finishes_is_timeout(radio: VirtualRadio) -> None:
    # A macOS permission prompt nobody answers: start() just waits.
    scanner = CableScanner(
        BumbleScannerBackend, {"radio": radio, "start_delay": 30}, start_timeout=0.05
    )
    error = await unavailable(scanner)
    assert error.reason is BluetoothReason.TIMEOUT
    assert "0.05 s" in str(error)
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (BleakDBusError("org.freedesktop.DBus.Error.NameHasNoOwner", []), "BLUEZ_NOT_RUNNING"),
        (BleakDBusError("org.freedesktop.systemd1.NoSuchUnit", []), "BLUEZ_NOT_RUNNING"),
        (BleakDBusError("org.freedesktop.DBus.Error.Spawn.Failed", []), "BLUEZ_NOT_RUNNING"),
        (BleakDBusError("org.freedesktop.DBus.Error.AuthFailed", []), "DBUS_PERMISSION_DENIED"),
        (BleakDBusError("org.freedesktop.DBus.Error.NoReply", []), "TIMEOUT"),
        (BleakDBusError("org.bluez.Error.NotReady", ["Resource Not Ready"]), "POWERED_OFF"),
        (BleakDBusError("org.bluez.Error.InProgress", []), "UNKNOWN"),
        (BleakError("adapter 'hci1' not found"), "NO_BLUETOOTH"),
        (BleakError("No Bluetooth adapters found."), "NO_BLUETOOTH"),
        (BleakError("something else"), "UNKNOWN"),
        (PermissionError(13, "Permission denied"), "DBUS_PERMISSION_DENIED"),
        (TimeoutError(), "TIMEOUT"),
        (RuntimeError("surprise"), "UNKNOWN"),
    ],
)
def test_failures_bleak_leaves_unmapped(exc: BaseException, reason: str) -> None:
    assert bluetooth_reason(exc) is BluetoothReason[reason]
