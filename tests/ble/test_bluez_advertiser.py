"""BluezAdvertiser against a real dbus-daemon with a fake BlueZ: what BlueZ reads back, what it
refuses, and what happens when there is no BlueZ or no bus at all."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import BusType, Message
from dbus_fast.aio import MessageBus

from hybrid.ble.bluez_advertiser import ADVERT_PATH, BluezAdvertiser
from hybrid.errors import AdvertiserError, AdvertiserReason, BluetoothReason
from hybrid.protocol.constants import FIDO_SERVICE_UUID
from tests.ble.conftest import FakeBluez, StartBus, disconnect

ADVERT = bytes(range(1, 21))
FakeBluezFactory = Callable[..., Any]


async def has_owner(bus_address: str, name: str) -> bool:
    """Ask the bus whether a connection (by unique name) is still there."""
    bus = await MessageBus(bus_address=bus_address, bus_type=BusType.SYSTEM).connect()
    try:
        reply = await bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="NameHasOwner",
                signature="s",
                body=[name],
            )
        )
        return bool(reply.body[0])
    finally:
        await disconnect(bus)


async def test_bluez_reads_a_broadcast_advert_with_our_service_data(
    system_bus: str, fake_bluez: FakeBluezFactory
) -> None:
    bluez: FakeBluez = await fake_bluez()
    advertiser = BluezAdvertiser("hci0", bus_address=system_bus, timeout=2)
    await advertiser.advertise(ADVERT)
    [registration] = bluez.registrations
    assert registration.adapter_path == "/org/bluez/hci0"
    assert registration.path == ADVERT_PATH
    # No local name, no UUID list: the advert says nothing but the encrypted 20 bytes.
    assert registration.properties == {
        "Type": "broadcast",
        "ServiceData": {FIDO_SERVICE_UUID: ADVERT},
    }
    await advertiser.stop()
    assert bluez.unregistered == [ADVERT_PATH]
    assert not await has_owner(system_bus, registration.sender)  # connection closed
    await advertiser.stop()
    assert bluez.unregistered == [ADVERT_PATH]


async def test_advertise_again_replaces_the_advert(
    system_bus: str, fake_bluez: FakeBluezFactory
) -> None:
    bluez: FakeBluez = await fake_bluez()
    advertiser = BluezAdvertiser(bus_address=system_bus, timeout=2)
    await advertiser.advertise(ADVERT)
    await advertiser.advertise(bytes(20))
    assert [r.properties["ServiceData"][FIDO_SERVICE_UUID] for r in bluez.registrations] == [
        ADVERT,
        bytes(20),
    ]
    assert bluez.unregistered == [ADVERT_PATH]  # the first, before the second was registered
    await advertiser.stop()


async def test_advert_bluez_released_is_not_unregistered(
    system_bus: str, fake_bluez: FakeBluezFactory
) -> None:
    bluez: FakeBluez = await fake_bluez()
    advertiser = BluezAdvertiser(bus_address=system_bus, timeout=2)
    await advertiser.advertise(ADVERT)
    await bluez.release(bluez.registrations[0])  # e.g. the adapter was switched off
    await advertiser.stop()
    assert bluez.unregistered == []


async def test_no_bluez_on_the_bus(system_bus: str) -> None:
    advertiser = BluezAdvertiser(bus_address=system_bus, timeout=2)
    with pytest.raises(AdvertiserError) as info:
        await advertiser.advertise(ADVERT)
    assert info.value.reason is AdvertiserReason.BLUETOOTH_UNAVAILABLE
    assert info.value.bluetooth is BluetoothReason.BLUEZ_NOT_RUNNING
    await advertiser.stop()


async def test_no_such_adapter(system_bus: str, fake_bluez: FakeBluezFactory) -> None:
    await fake_bluez()
    advertiser = BluezAdvertiser("hci1", bus_address=system_bus, timeout=2)
    with pytest.raises(AdvertiserError) as info:
        await advertiser.advertise(ADVERT)
    assert info.value.reason is AdvertiserReason.NO_ADAPTER
    assert "'hci1'" in str(info.value)  # names the adapter asked for


@pytest.mark.parametrize(
    ("error", "reason", "bluetooth"),
    [
        ("org.bluez.Error.NotPermitted", AdvertiserReason.NOT_PERMITTED, None),
        ("org.bluez.Error.InvalidLength", AdvertiserReason.TOO_LONG, None),
        ("org.bluez.Error.AlreadyExists", AdvertiserReason.ALREADY_REGISTERED, None),
        (
            "org.freedesktop.DBus.Error.AccessDenied",
            AdvertiserReason.BLUETOOTH_UNAVAILABLE,
            BluetoothReason.DBUS_PERMISSION_DENIED,
        ),
        ("org.bluez.Error.Failed", AdvertiserReason.REFUSED, None),
    ],
)
async def test_bluez_refusals_are_classified(
    system_bus: str,
    fake_bluez: FakeBluezFactory,
    error: str,
    reason: AdvertiserReason,
    bluetooth: BluetoothReason | None,
) -> None:
    bluez: FakeBluez = await fake_bluez(refuse_with=error)
    advertiser = BluezAdvertiser(bus_address=system_bus, timeout=2)
    with pytest.raises(AdvertiserError) as info:
        await advertiser.advertise(ADVERT)
    assert (info.value.reason, info.value.bluetooth) == (reason, bluetooth)
    assert error in str(info.value)  # BlueZ's own error name, for a search or a bug report
    assert bluez.unregistered == []  # nothing was registered, so nothing to undo
    await advertiser.stop()


async def test_no_bus_at_all(tmp_path: Path) -> None:
    advertiser = BluezAdvertiser(bus_address=f"unix:path={tmp_path / 'none'}", timeout=2)
    with pytest.raises(AdvertiserError) as info:
        await advertiser.advertise(ADVERT)
    assert info.value.bluetooth is BluetoothReason.NO_DBUS
    assert isinstance(info.value.__cause__, FileNotFoundError)


async def test_bus_refusing_our_login(start_bus: StartBus) -> None:
    advertiser = BluezAdvertiser(bus_address=start_bus(auth="ANONYMOUS"), timeout=2)
    with pytest.raises(AdvertiserError) as info:
        await advertiser.advertise(ADVERT)
    assert info.value.bluetooth is BluetoothReason.DBUS_PERMISSION_DENIED


@pytest.mark.parametrize("payload", [b"", bytes(28)])
async def test_payloads_no_advert_can_carry_are_refused_before_bluez(
    system_bus: str, fake_bluez: FakeBluezFactory, payload: bytes
) -> None:
    bluez: FakeBluez = await fake_bluez()
    with pytest.raises(AdvertiserError) as info:
        await BluezAdvertiser(bus_address=system_bus).advertise(payload)
    assert info.value.reason is AdvertiserReason.BAD_PAYLOAD
    assert bluez.registrations == []


@pytest.mark.parametrize("adapter", ["", "hci0/../hci1", "hci 0"])
def test_adapter_must_be_an_adapter_name(adapter: str) -> None:
    with pytest.raises(AdvertiserError) as info:
        BluezAdvertiser(adapter)
    assert info.value.reason is AdvertiserReason.BAD_ADAPTER_NAME
