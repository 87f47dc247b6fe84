"""Phone side over bumble: advertise caBLE service data from a virtual radio or an HCI dongle.

The same code drives a VirtualRadio device in tests and a real controller (`usb:0`,
`serial:/dev/ttyUSB0`, `tcp-client:host:port`) through bumble's transports, which is how the
phone role can advertise on macOS, Windows, or Linux without BlueZ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any

from hybrid.ble.advertiser import MAX_LEGACY_SERVICE_DATA, check_service_data
from hybrid.ble.bumble_radio import VirtualRadio, import_bumble
from hybrid.errors import AdvertiserError, AdvertiserReason
from hybrid.protocol.constants import FIDO_SERVICE_UUID16

if TYPE_CHECKING:
    from bumble.device import Device

logger = logging.getLogger(__name__)

_SERVICE_DATA_16 = 0x16  # AD type "Service Data - 16-bit UUID"
_TRANSPORT_EXAMPLES = "usb:0, serial:/dev/ttyUSB0 or tcp-client:127.0.0.1:9000"


def _random_static_address() -> str:
    raw = bytearray(os.urandom(6))
    raw[0] |= 0xC0  # a random static address has its two top bits set
    return ":".join(f"{b:02X}" for b in raw)


class BumbleAdvertiser:
    """Send non-connectable caBLE adverts (one Service Data 0xFFF9 element) from a bumble Device.

    Like Chromium's phone and kanidm, the advert carries the service data only: no flags and no
    name, which keeps 27 bytes for the payload and reveals nothing about the phone.
    """

    def __init__(
        self,
        device: Device,
        *,
        interval_ms: float = 100.0,
        timeout: float = 5.0,
        transport: Any = None,
    ) -> None:
        self._device = device
        self._interval_ms = interval_ms
        self._timeout = timeout
        self._transport = transport  # closed by close() when open() made it
        self._advertising = False

    @property
    def device(self) -> Device:
        """The bumble Device that advertises (its `random_address` is what scanners see)."""
        return self._device

    @classmethod
    async def from_radio(
        cls, radio: VirtualRadio, name: str = "hybrid-authenticator", **kwargs: Any
    ) -> BumbleAdvertiser:
        """An advertiser on a new device of a VirtualRadio."""
        return cls(await radio.new_device(name), **kwargs)

    @classmethod
    async def open(
        cls, transport_spec: str, *, timeout: float = 10.0, interval_ms: float = 100.0
    ) -> BumbleAdvertiser:
        """An advertiser on a real HCI controller reached through a bumble transport spec."""
        transport_mod = import_bumble("bumble.transport")
        common = import_bumble("bumble.transport.common")
        try:
            transport = await asyncio.wait_for(
                transport_mod.open_transport(transport_spec), timeout
            )
        except (common.TransportSpecError, ValueError, AssertionError) as exc:
            raise AdvertiserError(
                f"'{transport_spec}' is not an HCI transport bumble understands: use one like "
                f"{_TRANSPORT_EXAMPLES}.",
                AdvertiserReason.BAD_TRANSPORT,
            ) from exc
        except Exception as exc:
            raise AdvertiserError(
                f"Could not open the Bluetooth controller at '{transport_spec}' ({exc!r}): check "
                "that it is plugged in and not claimed by the system's Bluetooth service "
                "(on Linux: 'sudo systemctl stop bluetooth'), and that you may access it.",
                AdvertiserReason.CANNOT_OPEN,
            ) from exc
        try:
            device_mod = import_bumble("bumble.device")
            hci = import_bumble("bumble.hci")
            device = device_mod.Device.with_hci(
                "hybrid-authenticator",
                hci.Address(_random_static_address()),
                transport.source,
                transport.sink,
            )
            await asyncio.wait_for(device.power_on(), timeout)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await transport.close()
            if not isinstance(exc, Exception):
                raise
            raise AdvertiserError(
                f"The Bluetooth controller at '{transport_spec}' did not start ({exc!r}): "
                "unplug and replug it, or check that it is an HCI (not vendor-mode) dongle.",
                AdvertiserReason.DID_NOT_START,
            ) from exc
        return cls(device, interval_ms=interval_ms, timeout=timeout, transport=transport)

    async def __aenter__(self) -> BumbleAdvertiser:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def advertise(self, service_data: bytes) -> None:
        """Advertise `service_data` under 0xFFF9 until `stop()`, replacing any earlier advert."""
        data = check_service_data(service_data, MAX_LEGACY_SERVICE_DATA)
        core = import_bumble("bumble.core")
        device_mod = import_bumble("bumble.device")
        uuid16 = FIDO_SERVICE_UUID16.to_bytes(2, "little")
        ad = bytes(core.AdvertisingData([(_SERVICE_DATA_16, uuid16 + data)]))
        # Set before the controller is asked: if stopping after a cancellation fails, a later
        # stop() or close() must still try to turn the advert off.
        self._advertising = True
        error, cancelled = await self._controller(
            self._device.start_advertising(
                advertising_type=device_mod.AdvertisingType.UNDIRECTED,  # non-connectable
                advertising_data=ad,
                advertising_interval_min=self._interval_ms,
                advertising_interval_max=self._interval_ms,
            )
        )
        if cancelled is not None:
            await self._stop_after_cancel()
            raise cancelled
        if error is not None:
            self._advertising = False
            raise AdvertiserError(
                f"The Bluetooth controller refused to advertise ({error!r}): check that it is "
                "powered and not advertising for another program, then try again.",
                AdvertiserReason.REFUSED,
            ) from error

    async def stop(self) -> None:
        """Stop advertising; safe to call again or before `advertise`."""
        if not self._advertising:
            return
        self._advertising = False
        error, cancelled = await self._controller(self._device.stop_advertising())
        if cancelled is not None:
            if error is not None:
                logger.warning("the advert may still be on: stopping it failed (%r)", error)
            raise cancelled
        if error is not None:
            raise AdvertiserError(
                f"The Bluetooth controller did not stop advertising ({error!r}): unplug it or "
                "restart the program to be sure the advert is gone.",
                AdvertiserReason.DID_NOT_STOP,
            ) from error

    async def _stop_after_cancel(self) -> None:
        """Turn off the advert a cancelled `advertise()` started; a failure is only logged (the
        cancellation is what the caller sees) and leaves stop()/close() to try again."""
        error, _ = await self._controller(self._device.stop_advertising())
        if error is None:
            self._advertising = False
        else:
            logger.warning("advertising was cancelled but could not be stopped (%r)", error)

    async def _controller(
        self, call: Coroutine[Any, Any, None]
    ) -> tuple[BaseException | None, asyncio.CancelledError | None]:
        """Run one controller call to its end, within the timeout, even if cancelled meanwhile.

        Returns the call's error and the cancellation that arrived while it ran, which the
        caller re-raises once the controller is in a known state. Why not simply await it:
        bumble's host waits for every HCI reply with `asyncio.wait_for`, which on Python 3.11
        drops a cancellation that lands just after the reply (the task then carries on as if
        never cancelled; CPython gh-86296, fixed in 3.12), and a call interrupted between an
        HCI command and its reply leaves the reply to be mistaken for the next command's.
        The call therefore runs in a task nobody cancels but its own timeout.
        """

        async def bounded() -> None:
            async with asyncio.timeout(self._timeout):
                await call

        task = asyncio.ensure_future(bounded())
        cancelled: asyncio.CancelledError | None = None
        while not task.done():
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError as exc:  # kept, re-raised by the caller
                cancelled = exc
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        return error, cancelled

    async def close(self) -> None:
        """Stop advertising and release the controller opened by `open()`; idempotent."""
        try:
            await self.stop()
        finally:
            transport, self._transport = self._transport, None
            if transport is not None:
                with contextlib.suppress(Exception):
                    await self._device.power_off()
                await transport.close()
