"""Phone side over bumble: advertise caBLE service data from a virtual radio or an HCI dongle.

The same code drives a VirtualRadio device in tests and a real controller (`usb:0`,
`serial:/dev/ttyUSB0`, `tcp-client:host:port`) through bumble's transports, which is how the
phone role can advertise on macOS, Windows, or Linux without BlueZ.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from types import TracebackType
from typing import TYPE_CHECKING, Any

from hybrid.ble.advertiser import MAX_LEGACY_SERVICE_DATA, check_service_data
from hybrid.ble.bumble_radio import VirtualRadio, import_bumble
from hybrid.errors import AdvertiserError, AdvertiserReason
from hybrid.protocol.constants import FIDO_SERVICE_UUID16

if TYPE_CHECKING:
    from bumble.device import Device

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
        # Set before the await: a cancellation mid-start may leave the controller advertising,
        # and stop() must then still turn it off (stopping an advert that never started is a
        # no-op in bumble).
        self._advertising = True
        try:
            await asyncio.wait_for(
                self._device.start_advertising(
                    advertising_type=device_mod.AdvertisingType.UNDIRECTED,  # non-connectable
                    advertising_data=ad,
                    advertising_interval_min=self._interval_ms,
                    advertising_interval_max=self._interval_ms,
                ),
                self._timeout,
            )
        except Exception as exc:
            self._advertising = False
            raise AdvertiserError(
                f"The Bluetooth controller refused to advertise ({exc!r}): check that it is "
                "powered and not advertising for another program, then try again.",
                AdvertiserReason.REFUSED,
            ) from exc

    async def stop(self) -> None:
        """Stop advertising; safe to call again or before `advertise`."""
        if not self._advertising:
            return
        self._advertising = False
        try:
            await asyncio.wait_for(self._device.stop_advertising(), self._timeout)
        except Exception as exc:
            raise AdvertiserError(
                f"The Bluetooth controller did not stop advertising ({exc!r}): unplug it or "
                "restart the program to be sure the advert is gone.",
                AdvertiserReason.DID_NOT_STOP,
            ) from exc

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
