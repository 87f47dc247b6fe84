"""Desktop side: listen for caBLE adverts with bleak and hand their raw service data on.

The scanner only moves bytes. It cannot tell our phone's advert from anyone else's (that takes
the QR secret), so it yields every plausible service-data value and lets the caller
trial-decrypt. What it does own is getting Bluetooth started, and saying clearly why not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner

from hybrid.ble.availability import bluetooth_unavailable
from hybrid.errors import BluetoothReason, BluetoothUnavailable
from hybrid.protocol.constants import ADVERT_SIZE, CABLE_SERVICE_UUIDS

logger = logging.getLogger(__name__)

#: BlueZ reports each device's advert once unless asked for duplicates; a phone that rotates its
#: advert would then stay invisible after the first, possibly stale, one.
_BLUEZ_DUPLICATES: Final = {"filters": {"DuplicateData": True}}
#: Keys CableScanner sets itself: a UUID filter would drop caBLE adverts (see platform notes).
_RESERVED_KWARGS: Final = frozenset({"detection_callback", "service_uuids", "backend"})
#: bleak's BlueZ backend reports -127 when the advert came without an RSSI.
_NO_RSSI: Final = -127


@dataclass(frozen=True, slots=True)
class CableAdvert:
    """One caBLE service-data value as heard over the air, not yet decrypted."""

    service_data: bytes
    uuid: str
    address: str
    rssi: int | None


class CableScanner:
    """Scan for caBLE adverts; `async with CableScanner() as s: async for a in s.adverts()`.

    Nothing is de-duplicated (the caller commits to the first advert that decrypts), but at most
    `max_queued` unread adverts are kept (the oldest are dropped), so a noisy room cannot grow
    memory.
    """

    def __init__(
        self,
        scanner_backend: type[BaseBleakScanner] | None = None,
        scanner_kwargs: dict[str, Any] | None = None,
        start_timeout: float = 5.0,
        *,
        max_queued: int = 64,
    ) -> None:
        kwargs = dict(scanner_kwargs or {})
        if reserved := _RESERVED_KWARGS & kwargs.keys():
            raise ValueError(
                f"scanner_kwargs may not set {sorted(reserved)}: CableScanner scans without a "
                "UUID filter and uses its own callback; pass the backend as scanner_backend."
            )
        if start_timeout <= 0:
            raise ValueError("start_timeout must be a positive number of seconds")
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        if scanner_backend is None and sys.platform == "linux":
            kwargs.setdefault("bluez", _BLUEZ_DUPLICATES)
        self._backend = scanner_backend
        self._kwargs = kwargs
        self._start_timeout = start_timeout
        self._max_queued = max_queued
        self._scanner: BleakScanner | None = None
        self._queue: asyncio.Queue[CableAdvert | None] | None = None

    async def __aenter__(self) -> CableScanner:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start scanning, or raise BluetoothUnavailable saying why Bluetooth cannot be used."""
        if self._scanner is not None:
            return
        try:
            scanner = BleakScanner(
                self._on_advert, service_uuids=None, backend=self._backend, **self._kwargs
            )
        except Exception as exc:
            raise bluetooth_unavailable(exc) from exc
        self._queue = asyncio.Queue(self._max_queued)
        try:
            async with asyncio.timeout(self._start_timeout):
                await scanner.start()
        except BaseException as exc:
            self._queue = None
            await self._stop_quietly(scanner)
            if isinstance(exc, TimeoutError):
                raise BluetoothUnavailable(
                    BluetoothReason.TIMEOUT,
                    f"scanning did not start within {self._start_timeout:g} s",
                ) from exc
            if isinstance(exc, Exception):
                raise bluetooth_unavailable(exc) from exc
            raise
        self._scanner = scanner

    async def adverts(self) -> AsyncGenerator[CableAdvert, None]:
        """Yield caBLE adverts as they arrive; the iteration ends when the scanner stops."""
        queue = self._queue
        if queue is None:
            raise RuntimeError("The scanner is not running: await start() (or use 'async with').")
        while True:
            advert = await queue.get()
            if advert is None:
                queue.put_nowait(None)  # let any other reader end too
                return
            yield advert

    async def stop(self) -> None:
        """Stop scanning and end every `adverts()` iteration; safe to call more than once."""
        scanner, self._scanner = self._scanner, None
        queue, self._queue = self._queue, None
        if queue is not None:
            self._push(queue, None)
        if scanner is not None:
            await self._stop_quietly(scanner)

    async def _stop_quietly(self, scanner: BleakScanner) -> None:
        # A scanner that failed to start, or whose adapter vanished, may fail to stop too; the
        # caller is already leaving, and the original error (if any) is the one to report.
        try:
            async with asyncio.timeout(self._start_timeout):
                await scanner.stop()
        except Exception as exc:
            logger.debug("stopping the BLE scanner failed: %r", exc)

    def _on_advert(self, device: BLEDevice, adv: AdvertisementData) -> None:
        queue = self._queue
        if queue is None:
            return
        for uuid in CABLE_SERVICE_UUIDS:
            data = adv.service_data.get(uuid)
            if data is None or len(data) < ADVERT_SIZE:
                continue
            rssi = None if adv.rssi == _NO_RSSI else adv.rssi
            self._push(queue, CableAdvert(bytes(data), uuid, device.address, rssi))

    @staticmethod
    def _push(queue: asyncio.Queue[CableAdvert | None], item: CableAdvert | None) -> None:
        if queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()  # drop the oldest: fresh adverts matter, stale ones do not
        queue.put_nowait(item)


async def check_bluetooth(
    scanner_backend: type[BaseBleakScanner] | None = None,
    scanner_kwargs: dict[str, Any] | None = None,
    timeout: float = 5.0,
) -> None:
    """Return if a scan can start here, else raise BluetoothUnavailable saying why not."""
    async with CableScanner(scanner_backend, scanner_kwargs, start_timeout=timeout):
        pass
