"""BumbleScannerBackend turns bumble adverts into what bleak's BlueZ backend would report."""

import asyncio

import pytest
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bumble.device import AdvertisingType

from hybrid.ble.bumble_backend import BumbleScannerBackend, advertisement_data
from hybrid.ble.bumble_radio import VirtualRadio

HEART_RATE = "0000180d-0000-1000-8000-00805f9b34fb"
CUSTOM_128 = "12345678-9abc-def0-1234-56789abcdef0"
CUSTOM_32 = "12345678-0000-1000-8000-00805f9b34fb"


def test_every_field_bleak_knows_is_converted() -> None:
    custom = bytes.fromhex(CUSTOM_128.replace("-", ""))[::-1]  # AD carries UUIDs little-endian
    adv = advertisement_data(
        [
            (0x16, b"\x0d\x18" + b"sd16"),
            (0x20, bytes.fromhex("78563412") + b"sd32"),
            (0x21, custom + b"sd128"),
            (0x03, b"\x0d\x18\x0f\x18"),
            (0x07, custom),
            (0x08, b"short"),
            (0x09, b"complete"),
            (0x0A, b"\xf4"),
            (0xFF, b"\x4c\x00\x02\x15"),
        ],
        rssi=-42,
    )
    assert adv.service_data == {HEART_RATE: b"sd16", CUSTOM_32: b"sd32", CUSTOM_128: b"sd128"}
    assert adv.service_uuids == [HEART_RATE, "0000180f-0000-1000-8000-00805f9b34fb", CUSTOM_128]
    assert adv.local_name == "complete"  # preferred over the shortened name
    assert adv.tx_power == -12
    assert adv.manufacturer_data == {0x004C: b"\x02\x15"}
    assert adv.rssi == -42


def test_malformed_elements_are_skipped_not_raised() -> None:
    adv = advertisement_data(
        [
            (0x16, b"\xf9"),  # service data shorter than its UUID
            (0xFF, b"\x4c"),  # manufacturer data without a full company ID
            (0x0A, b""),  # empty TX power
            (0x03, b"\x0d\x18\x0f"),  # a trailing half UUID
            (0x08, b"\xff\xfename"),  # not UTF-8
        ],
        rssi=-127,
    )
    assert adv.service_data == {}
    assert adv.manufacturer_data == {}
    assert adv.tx_power is None
    assert adv.service_uuids == [HEART_RATE]
    assert adv.local_name is not None and adv.local_name.endswith("name")


async def test_real_bleak_scanner_sees_a_bumble_advert(radio: VirtualRadio) -> None:
    sender = await radio.new_device("sender")
    await sender.start_advertising(
        advertising_type=AdvertisingType.UNDIRECTED,
        advertising_data=b"\x05\x09pixl" + b"\x03\x03\x0d\x18" + b"\x02\x0a\x04",
        advertising_interval_min=20,
        advertising_interval_max=20,
    )
    seen: asyncio.Queue[tuple[BLEDevice, AdvertisementData]] = asyncio.Queue()
    scanner = BleakScanner(
        lambda device, adv: seen.put_nowait((device, adv)),
        backend=BumbleScannerBackend,
        device=await radio.new_device("receiver"),
    )
    async with scanner:
        device, adv = await asyncio.wait_for(seen.get(), 2)
    assert device.address == sender.random_address.to_string(with_type_qualifier=False)
    assert device.name == "pixl"
    assert adv.local_name == "pixl"
    assert adv.service_uuids == [HEART_RATE]
    assert adv.tx_power == 4
    assert isinstance(adv.rssi, int)


async def test_bleak_uuid_filter_is_honoured(radio: VirtualRadio) -> None:
    # bleak filters on advertised UUID lists only, which is why CableScanner never sets one.
    sender = await radio.new_device("sender")
    await sender.start_advertising(
        advertising_type=AdvertisingType.UNDIRECTED,
        advertising_data=b"\x17\x16\xf9\xff" + bytes(20),
        advertising_interval_min=20,
        advertising_interval_max=20,
    )
    filtered: list[AdvertisementData] = []
    unfiltered: asyncio.Queue[AdvertisementData] = asyncio.Queue()
    async with (
        BleakScanner(
            lambda _, adv: filtered.append(adv),
            ["0000fff9-0000-1000-8000-00805f9b34fb"],
            backend=BumbleScannerBackend,
            radio=radio,
        ),
        BleakScanner(
            lambda _, adv: unfiltered.put_nowait(adv), backend=BumbleScannerBackend, radio=radio
        ),
    ):
        for _ in range(3):  # three adverts reached both scanners' radios
            await asyncio.wait_for(unfiltered.get(), 2)
    assert filtered == []


def test_backend_needs_a_radio_or_a_device() -> None:
    with pytest.raises(ValueError, match="radio= or device="):
        BleakScanner(backend=BumbleScannerBackend)
