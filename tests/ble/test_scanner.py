"""CableScanner over the air: bumble advertisers and the real BleakScanner on a virtual radio,
and once through bleak's real BlueZ backend against a fake BlueZ on a real D-Bus."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bumble.device import AdvertisingType

from hybrid.ble import CableAdvert, CableScanner
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.protocol.constants import FIDO_SERVICE_UUID, GOOGLE_SERVICE_UUID

ADVERT = bytes(range(1, 21))
BATTERY_SERVICE_UUID = "0000180f-0000-1000-8000-00805f9b34fb"
WAIT = 2.0  # seconds to wait for an advert that is sent every 20 ms


def ad(ad_type: int, value: bytes) -> bytes:
    """One AD structure: length, type, value."""
    return bytes([len(value) + 1, ad_type]) + value


def service_data(uuid16: int, data: bytes) -> bytes:
    return ad(0x16, uuid16.to_bytes(2, "little") + data)


async def broadcast(radio: VirtualRadio, name: str, advertising_data: bytes) -> str:
    """Advertise raw AD bytes from a new device every 20 ms; return its address."""
    device = await radio.new_device(name)
    await device.start_advertising(
        advertising_type=AdvertisingType.UNDIRECTED,
        advertising_data=advertising_data,
        advertising_interval_min=20,
        advertising_interval_max=20,
    )
    return str(device.random_address.to_string(with_type_qualifier=False))


async def first_adverts(scanner: CableScanner, count: int) -> list[CableAdvert]:
    adverts: list[CableAdvert] = []
    async with asyncio.timeout(WAIT):
        async for advert in scanner.adverts():
            adverts.append(advert)
            if len(adverts) == count:
                break
    return adverts


def bumble_scanner(radio: VirtualRadio, **kwargs: Any) -> CableScanner:
    return CableScanner(BumbleScannerBackend, {"radio": radio}, start_timeout=2, **kwargs)


@pytest.mark.parametrize("payload", [ADVERT, ADVERT + b"\xaa\xbb\xcc\xdd"], ids=["20", "24"])
async def test_advert_arrives_whole(radio: VirtualRadio, payload: bytes) -> None:
    advertiser = await BumbleAdvertiser.from_radio(radio, interval_ms=20)
    await advertiser.advertise(payload)
    address = advertiser.device.random_address.to_string(with_type_qualifier=False)
    async with bumble_scanner(radio) as scanner:
        [advert] = await first_adverts(scanner, 1)
    assert advert.service_data == payload  # CTAP 2.3 suffix kept: the caller decrypts 20
    assert advert.uuid == FIDO_SERVICE_UUID
    assert advert.address == address
    assert isinstance(advert.rssi, int)


async def test_foreign_adverts_are_ignored_and_google_uuid_accepted(radio: VirtualRadio) -> None:
    foreign = {
        "other-uuid": service_data(0x180F, ADVERT),
        "manufacturer-only": ad(0xFF, b"\x4c\x00" + ADVERT),
        "too-short": service_data(0xFFF9, ADVERT[:19]),
        "uuid-list-only": ad(0x03, b"\xf9\xff"),
    }
    senders = {name: await broadcast(radio, name, data) for name, data in foreign.items()}
    google = await broadcast(radio, "google", service_data(0xFDE2, ADVERT))

    heard: set[str] = set()  # what the radio delivered, to show the strangers were on air

    def everything(device: BLEDevice, adv: AdvertisementData) -> None:
        heard.add(device.address)

    async with (
        BleakScanner(everything, backend=BumbleScannerBackend, radio=radio),
        bumble_scanner(radio) as scanner,
    ):
        adverts = await first_adverts(scanner, 5)
        async with asyncio.timeout(WAIT):
            while not set(senders.values()) <= heard:
                await asyncio.sleep(0.01)
    assert {(a.address, a.uuid, a.service_data) for a in adverts} == {
        (google, GOOGLE_SERVICE_UUID, ADVERT)
    }


async def test_both_uuids_in_one_advert_yield_both(radio: VirtualRadio) -> None:
    other = bytes(reversed(ADVERT))
    await broadcast(radio, "both", service_data(0xFFF9, ADVERT) + service_data(0xFDE2, other))
    async with bumble_scanner(radio) as scanner:
        adverts = await first_adverts(scanner, 2)
    assert {(a.uuid, a.service_data) for a in adverts} == {
        (FIDO_SERVICE_UUID, ADVERT),
        (GOOGLE_SERVICE_UUID, other),
    }


class BurstBackend(BaseBleakScanner):
    """A radio in a crowded room: `count` distinct caBLE adverts the moment scanning starts."""

    def __init__(self, callback: Any, service_uuids: Any, *args: Any, count: int, **_: Any) -> None:
        super().__init__(callback, service_uuids)
        self.count = count

    async def start(self) -> None:
        for i in range(self.count):
            adv = AdvertisementData(
                None, {}, {FIDO_SERVICE_UUID: bytes([i]) * 20}, [], None, -50, ()
            )
            address = f"F0:00:00:00:00:{i:02X}"
            device = self.create_or_update_device(address, address, None, None, adv)
            self.call_detection_callbacks(device, adv)

    async def stop(self) -> None:
        pass


async def test_unread_adverts_are_bounded_and_the_oldest_dropped() -> None:
    scanner = CableScanner(BurstBackend, {"count": 10}, max_queued=3)
    await scanner.start()
    consumer = asyncio.create_task(collect(scanner.adverts()))
    await asyncio.sleep(0)  # let the reader drain what is queued
    await scanner.stop()
    adverts = await asyncio.wait_for(consumer, WAIT)
    assert [a.service_data[0] for a in adverts] == [7, 8, 9]
    assert all(a.rssi == -50 for a in adverts)


async def collect(adverts: AsyncIterator[CableAdvert]) -> list[CableAdvert]:
    return [advert async for advert in adverts]


async def test_stop_ends_every_reader_and_is_idempotent(radio: VirtualRadio) -> None:
    scanner = bumble_scanner(radio)
    await scanner.start()
    readers = [asyncio.create_task(collect(scanner.adverts())) for _ in range(2)]
    await asyncio.sleep(0)
    await scanner.stop()
    await scanner.stop()
    assert await asyncio.wait_for(asyncio.gather(*readers), WAIT) == [[], []]
    with pytest.raises(RuntimeError, match="start"):
        await anext(scanner.adverts())


async def test_scanner_can_start_again_after_stop(radio: VirtualRadio) -> None:
    await broadcast(radio, "phone", service_data(0xFFF9, ADVERT))
    scanner = bumble_scanner(radio)
    for _ in range(2):
        async with scanner:
            [advert] = await first_adverts(scanner, 1)
            assert advert.service_data == ADVERT


async def test_adverts_before_start_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        await anext(CableScanner().adverts())


@pytest.mark.parametrize("key", ["service_uuids", "detection_callback", "backend"])
def test_scanner_kwargs_cannot_override_what_the_scanner_needs(key: str) -> None:
    with pytest.raises(ValueError, match="UUID filter"):
        CableScanner(scanner_kwargs={key: None})


async def test_bluez_backend_delivers_adverts(fake_bluez: Callable[..., Any]) -> None:
    # bleak's real BlueZ backend: InterfacesAdded for a Device1 with ServiceData, over D-Bus.
    bluez = await fake_bluez()
    async with CableScanner(start_timeout=2) as scanner:
        # The stranger comes first: were it not ignored, it would be the first advert read.
        bluez.add_device("hci0", "12:34:56:78:9A:BD", {BATTERY_SERVICE_UUID: ADVERT})
        bluez.add_device("hci0", "12:34:56:78:9A:BC", {FIDO_SERVICE_UUID: ADVERT})
        [advert] = await first_adverts(scanner, 1)
    assert advert == CableAdvert(ADVERT, FIDO_SERVICE_UUID, "12:34:56:78:9A:BC", -60)


async def test_callers_bluez_arguments_are_passed_unchanged(
    fake_bluez: Callable[..., Any],
) -> None:
    bluez = await fake_bluez()
    async with CableScanner(scanner_kwargs={"bluez": {"adapter": "hci0"}}, start_timeout=2):
        assert bluez.adapters["hci0"].discovering
    assert bluez.adapters["hci0"].filter_calls[0]["DuplicateData"] is False  # bleak's default
