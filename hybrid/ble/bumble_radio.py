"""A virtual BLE radio: bumble controllers on one in-process link, for tests and the demo.

Every device made here runs bumble's real host stack against bumble's controller emulation, so
adverts cross a genuine HCI/link-layer path; only the air is simulated. bumble is an optional
extra, so it is imported when a radio is made, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from hybrid.errors import AdvertiserError, AdvertiserReason

if TYPE_CHECKING:
    from bumble.device import Device


def import_bumble(module: str) -> ModuleType:
    """Import a bumble module, or say how to install the optional extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise AdvertiserError(
            "The bumble Bluetooth stack is not installed: install it with "
            "'pip install fido-hybrid[bumble]'.",
            AdvertiserReason.NOT_INSTALLED,
        ) from exc


class VirtualRadio:
    """One shared virtual air: every device made by `new_device` hears every other."""

    def __init__(self) -> None:
        link = import_bumble("bumble.link")
        self._link: Any = link.LocalLink()
        self._devices: list[Device] = []
        self._controllers: list[Any] = []
        self._closed = False

    async def __aenter__(self) -> VirtualRadio:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def add_controller(self, name: str, host_source: Any = None, host_sink: Any = None) -> Any:
        """A bumble Controller on this radio; give it a transport's source and sink to make a
        virtual dongle that a host elsewhere reaches over HCI (e.g. `tcp-server:`)."""
        if self._closed:
            raise RuntimeError("This VirtualRadio is closed: make a new one.")
        controller_mod = import_bumble("bumble.controller")
        controller = controller_mod.Controller(
            name, host_source=host_source, host_sink=host_sink, link=self._link
        )
        self._controllers.append(controller)
        return controller

    async def new_device(self, name: str = "device") -> Device:
        """A powered-on bumble Device with its own controller and random static address."""
        device_mod = import_bumble("bumble.device")
        hci = import_bumble("bumble.hci")
        controller = self.add_controller(name)
        index = len(self._controllers)
        # Random static addresses have the two top bits set (Core spec Vol 6, Part B, 1.3.2.1).
        address = hci.Address(f"F0:00:00:00:{index >> 8:02X}:{index & 0xFF:02X}")
        device: Device = device_mod.Device.with_hci(name, address, controller, controller)
        self._devices.append(device)
        await device.power_on()
        return device

    async def close(self) -> None:
        """Stop every device's scanning and advertising and take it off the air; idempotent."""
        self._closed = True
        devices, self._devices = self._devices, []
        controllers, self._controllers = self._controllers, []
        for device in devices:
            with contextlib.suppress(Exception):
                if device.is_scanning:
                    await device.stop_scanning()
            with contextlib.suppress(Exception):
                await device.stop_advertising()
            with contextlib.suppress(Exception):
                await device.power_off()
        for controller in controllers:
            with contextlib.suppress(Exception):
                self._link.remove_controller(controller)
