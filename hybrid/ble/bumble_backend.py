"""A bleak scanner backend driven by a bumble device, so tests run the real BleakScanner path.

`BleakScanner(backend=BumbleScannerBackend, radio=radio)` behaves like the OS scanner: bumble
adverts become bleak `AdvertisementData` exactly as BlueZ would report them (service data keyed
by full lower-case 128-bit UUIDs). It can also play the one thing no test machine can: an adapter
that is off or refused, via `unavailable=`, and a slow permission prompt, via `start_delay=`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any, Literal

from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason
from bleak.uuids import normalize_uuid_16, normalize_uuid_32

from hybrid.ble.bumble_radio import VirtualRadio, import_bumble

if TYPE_CHECKING:
    from bumble.device import Advertisement, Device

logger = logging.getLogger(__name__)

# AD types (Bluetooth Assigned Numbers, 2.3), read from the raw structures so that a malformed
# element from a stranger's advert is skipped instead of raising inside the radio's callback.
_UUID_LISTS = {0x02: 2, 0x03: 2, 0x04: 4, 0x05: 4, 0x06: 16, 0x07: 16}
_SERVICE_DATA = {0x16: 2, 0x20: 4, 0x21: 16}
_NAMES = (0x09, 0x08)  # complete local name first, then shortened
_TX_POWER = 0x0A
_MANUFACTURER = 0xFF
_NO_RSSI = -127  # what bleak's BlueZ backend reports when there is no RSSI


def uuid_string(raw: bytes) -> str:
    """bleak's spelling of a little-endian 16-, 32- or 128-bit UUID from an AD structure."""
    if len(raw) == 2:
        return normalize_uuid_16(int.from_bytes(raw, "little"))
    if len(raw) == 4:
        return normalize_uuid_32(int.from_bytes(raw, "little"))
    return str(uuid.UUID(bytes=raw[::-1]))


def advertisement_data(structures: list[tuple[int, bytes]], rssi: int) -> AdvertisementData:
    """Convert raw AD structures into bleak's AdvertisementData, skipping malformed ones."""
    service_data: dict[str, bytes] = {}
    service_uuids: list[str] = []
    manufacturer_data: dict[int, bytes] = {}
    names: dict[int, str] = {}
    tx_power: int | None = None
    for ad_type, value in structures:
        if ad_type in _SERVICE_DATA and len(value) >= _SERVICE_DATA[ad_type]:
            size = _SERVICE_DATA[ad_type]
            service_data[uuid_string(value[:size])] = bytes(value[size:])
        elif ad_type in _UUID_LISTS:
            size = _UUID_LISTS[ad_type]
            service_uuids += [
                uuid_string(value[i : i + size]) for i in range(0, len(value) - size + 1, size)
            ]
        elif ad_type in _NAMES:
            names[ad_type] = value.decode("utf-8", errors="replace")
        elif ad_type == _TX_POWER and len(value) == 1:
            tx_power = int.from_bytes(value, "little", signed=True)
        elif ad_type == _MANUFACTURER and len(value) >= 2:
            manufacturer_data[int.from_bytes(value[:2], "little")] = bytes(value[2:])
    return AdvertisementData(
        local_name=next((names[t] for t in _NAMES if t in names), None),
        manufacturer_data=manufacturer_data,
        service_data=service_data,
        service_uuids=service_uuids,
        tx_power=tx_power,
        rssi=rssi,
        platform_data=(),
    )


class BumbleScannerBackend(BaseBleakScanner):
    """bleak backend over a bumble Device (`device=`) or a fresh device on `radio=`."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        radio: VirtualRadio | None = None,
        device: Device | None = None,
        unavailable: BleakBluetoothNotAvailableReason | None = None,
        start_delay: float = 0.0,
        **kwargs: Any,  # bleak's bluez= and cb= arguments, meaningless here
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        if unavailable is None and (radio is None) == (device is None):
            raise ValueError("BumbleScannerBackend needs exactly one of radio= or device=")
        self._radio = radio
        self._device = device
        self._active = scanning_mode == "active"
        self._unavailable = unavailable
        self._start_delay = start_delay
        self._scanning = False

    async def start(self) -> None:
        """Start scanning on the bumble device; raise bleak's own error if told to play 'off'."""
        if self._start_delay > 0:
            await asyncio.sleep(self._start_delay)  # an OS permission prompt nobody answers
        if self._unavailable is not None:
            raise BleakBluetoothNotAvailableError(
                f"Bluetooth unavailable (simulated): {self._unavailable.name}", self._unavailable
            )
        if self._device is None:
            assert self._radio is not None  # checked in __init__
            self._device = await self._radio.new_device("bleak-scanner")
        device = self._device
        self.seen_devices = {}
        device_mod = import_bumble("bumble.device")
        device.on(device_mod.Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        self._scanning = True
        try:
            await device.start_scanning(active=self._active, filter_duplicates=False)
        except BaseException:
            self._scanning = False
            device.remove_listener(device_mod.Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            raise

    async def stop(self) -> None:
        """Stop scanning; a no-op when not scanning."""
        if not self._scanning or self._device is None:
            return
        self._scanning = False
        device_mod = import_bumble("bumble.device")
        self._device.remove_listener(device_mod.Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._device.stop_scanning()

    def _on_advertisement(self, advert: Advertisement) -> None:
        if not self._scanning:
            return
        try:
            structures = [(int(t), bytes(v)) for t, v in advert.data.ad_structures]
            rssi = advert.rssi if advert.rssi != advert.RSSI_NOT_AVAILABLE else _NO_RSSI
            adv = advertisement_data(structures, rssi)
            if not self.is_allowed_uuid(adv.service_uuids):
                return
            address = advert.address.to_string(with_type_qualifier=False)
        except Exception as exc:  # a stranger's malformed advert must not stop the scan
            logger.debug("ignoring an advert bumble could not describe: %r", exc)
            return
        device = self.create_or_update_device(address, address, adv.local_name, advert, adv)
        self.call_detection_callbacks(device, adv)
