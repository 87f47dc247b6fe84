"""Phone side on Linux: advertise caBLE service data through BlueZ's LEAdvertisingManager1.

BlueZ owns the adapter, so a program advertises by exporting an `org.bluez.LEAdvertisement1`
object on the system bus and asking BlueZ to register it; BlueZ reads the object's properties
back over D-Bus and builds the advert. dbus-fast is a Linux-only dependency of bleak, so this
module is imported only where it is used, never by `hybrid.ble` itself.
"""

# No `from __future__ import annotations` here: dbus-fast reads the D-Bus signatures from
# evaluated annotations, and a postponed `-> None` would reach it as the string "None".

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Final

from dbus_fast import BusType, Message, MessageType, PropertyAccess, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusDict, DBusStr
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from hybrid.ble.advertiser import check_service_data
from hybrid.ble.availability import bluetooth_reason, dbus_error_reason
from hybrid.errors import (
    AdvertiserError,
    AdvertiserReason,
    BluetoothReason,
    BluetoothUnavailable,
)
from hybrid.protocol.constants import FIDO_SERVICE_UUID

logger = logging.getLogger(__name__)

BLUEZ_SERVICE: Final = "org.bluez"
ADVERTISING_MANAGER: Final = "org.bluez.LEAdvertisingManager1"
ADVERTISEMENT: Final = "org.bluez.LEAdvertisement1"
#: Where our advertisement object lives on our own bus connection (one advert per connection).
ADVERT_PATH: Final = "/org/fido_hybrid/advertisement0"

_ADAPTER_NAME = re.compile(r"[A-Za-z0-9_]+")
_NO_ADAPTER_ERRORS = frozenset(
    "org.freedesktop.DBus.Error." + name
    for name in ("UnknownObject", "UnknownInterface", "UnknownMethod")
)


class _Advertisement(ServiceInterface):
    """The object BlueZ reads: a broadcast (non-connectable) advert with service data only."""

    def __init__(self, service_data: bytes, on_release: Callable[[], None]) -> None:
        super().__init__(ADVERTISEMENT)
        self._service_data = service_data
        self._on_release = on_release

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> DBusStr:
        return "broadcast"

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> DBusDict:
        return {FIDO_SERVICE_UUID: Variant("ay", self._service_data)}

    @dbus_method()
    def Release(self) -> None:
        """BlueZ dropped the advert on its own (adapter removed or powered off)."""
        self._on_release()


def _advice(reason: BluetoothReason) -> str:
    return str(BluetoothUnavailable(reason))


class BluezAdvertiser:
    """Advertise through BlueZ on `adapter`; `bus_address` overrides the system bus (tests)."""

    def __init__(
        self, adapter: str = "hci0", bus_address: str | None = None, *, timeout: float = 5.0
    ) -> None:
        if not _ADAPTER_NAME.fullmatch(adapter):
            raise AdvertiserError(
                f"'{adapter}' is not a Bluetooth adapter name: use one that "
                "'bluetoothctl list' or 'hciconfig' shows, such as hci0.",
                AdvertiserReason.BAD_ADAPTER_NAME,
            )
        self._adapter = adapter
        self._adapter_path = f"/org/bluez/{adapter}"
        self._bus_address = bus_address
        self._timeout = timeout
        self._bus: MessageBus | None = None
        self._registered = False

    async def advertise(self, service_data: bytes) -> None:
        """Register an advert of `service_data` under 0xFFF9, replacing any earlier one."""
        data = check_service_data(service_data)
        await self.stop()
        bus = await self._connect()
        self._bus = bus
        bus.export(ADVERT_PATH, _Advertisement(data, self._released))
        try:
            reply = await self._call(bus, "RegisterAdvertisement", "oa{sv}", [ADVERT_PATH, {}])
        except BaseException:
            await self.stop()
            raise
        if reply.message_type == MessageType.ERROR:
            await self.stop()
            raise self._refusal(reply.error_name or "", reply.body, len(data))
        self._registered = True
        logger.debug("BlueZ advert registered on %s", self._adapter)

    async def stop(self) -> None:
        """Unregister the advert and close the bus connection; safe to call again."""
        bus, self._bus = self._bus, None
        if bus is None:
            return
        registered, self._registered = self._registered, False
        try:
            if registered:
                reply = await self._call(bus, "UnregisterAdvertisement", "o", [ADVERT_PATH])
                if reply.message_type == MessageType.ERROR:
                    logger.debug("BlueZ did not unregister the advert: %s", reply.error_name)
        except Exception as exc:  # BlueZ gone: it took the advert with it
            logger.debug("unregistering the BlueZ advert failed: %r", exc)
        finally:
            bus.unexport(ADVERT_PATH)
            await self._disconnect(bus)  # BlueZ also drops an advert whose owner leaves the bus

    async def _disconnect(self, bus: MessageBus) -> None:
        bus.disconnect()  # only shuts the socket down; it is closed once the reader sees that
        try:
            await asyncio.wait_for(bus.wait_for_disconnect(), self._timeout)  # type: ignore[no-untyped-call]
        except Exception as exc:
            logger.debug("the D-Bus connection did not close cleanly: %r", exc)

    def _released(self) -> None:
        self._registered = False
        logger.info("BlueZ stopped the caBLE advert (adapter removed or switched off)")

    async def _connect(self) -> MessageBus:
        bus: MessageBus | None = None
        try:
            bus = MessageBus(bus_address=self._bus_address, bus_type=BusType.SYSTEM)
            await asyncio.wait_for(bus.connect(), self._timeout)
        except Exception as exc:
            if bus is not None:
                bus.disconnect()
            reason = bluetooth_reason(exc)
            raise AdvertiserError(
                f"Cannot advertise over BlueZ: {_advice(reason)}",
                AdvertiserReason.BLUETOOTH_UNAVAILABLE,
                bluetooth=reason,
            ) from exc
        return bus

    async def _call(
        self, bus: MessageBus, member: str, signature: str, body: list[object]
    ) -> Message:
        message = Message(
            destination=BLUEZ_SERVICE,
            path=self._adapter_path,
            interface=ADVERTISING_MANAGER,
            member=member,
            signature=signature,
            body=body,
        )
        try:
            return await asyncio.wait_for(bus.call(message), self._timeout)
        except TimeoutError as exc:
            raise AdvertiserError(
                f"Cannot advertise over BlueZ: {_advice(BluetoothReason.TIMEOUT)}",
                AdvertiserReason.BLUETOOTH_UNAVAILABLE,
                bluetooth=BluetoothReason.TIMEOUT,
            ) from exc

    def _refusal(self, name: str, body: list[object], length: int) -> AdvertiserError:
        detail = f"{name}: {body[0]}" if body else name
        if name in _NO_ADAPTER_ERRORS:
            return AdvertiserError(
                f"BlueZ has no adapter '{self._adapter}' that can advertise ({detail}): pick one "
                "from 'bluetoothctl list', or plug in a Bluetooth LE adapter.",
                AdvertiserReason.NO_ADAPTER,
            )
        if name == "org.bluez.Error.NotPermitted":
            return AdvertiserError(
                f"BlueZ refused the advert ({detail}): turn the adapter on "
                "('bluetoothctl power on') and stop other programs that advertise, then retry.",
                AdvertiserReason.NOT_PERMITTED,
            )
        if name == "org.bluez.Error.InvalidLength":
            return AdvertiserError(
                f"The advert is too long for this adapter ({length} bytes of service data; "
                f"{detail}): send only the 20-byte caBLE advert.",
                AdvertiserReason.TOO_LONG,
            )
        if name == "org.bluez.Error.AlreadyExists":
            return AdvertiserError(
                f"BlueZ already has this advert registered ({detail}): stop the other "
                "advertiser of this program, or restart it, and try again.",
                AdvertiserReason.ALREADY_REGISTERED,
            )
        if (reason := dbus_error_reason(name)) is not None:
            return AdvertiserError(
                f"Cannot advertise over BlueZ: {_advice(reason)} ({detail})",
                AdvertiserReason.BLUETOOTH_UNAVAILABLE,
                bluetooth=reason,
            )
        return AdvertiserError(
            f"BlueZ refused the advert ({detail}): see 'journalctl -u bluetooth' for why, check "
            "that the adapter supports LE advertising ('btmgmt info'), then try again.",
            AdvertiserReason.REFUSED,
        )
