"""Finding USB security keys for a ceremony: at its start and about every second while it runs.

The application's `security_keys()` lists them, or python-fido2's HID discovery does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Final

from fido2.ctap import CtapDevice
from fido2.hid import CtapHidDevice, list_descriptors, open_connection

from hybrid.desktop.race import in_thread
from hybrid.desktop.security_keys import device_id

log = logging.getLogger(__name__)

#: How often the desktop looks for newly plugged-in keys during a ceremony (seconds).
KEY_POLL_INTERVAL: Final = 1.0

ListKeys = Callable[[], Iterable[CtapDevice]]


def hid_keys(skip: set[str]) -> list[CtapDevice]:
    """python-fido2's HID discovery, opening only keys not in `skip` (opening sends INIT)."""
    devices: list[CtapDevice] = []
    for descriptor in list_descriptors():  # type: ignore[no-untyped-call]
        if f"usb:{descriptor.path}" in skip:
            continue
        try:
            connection = open_connection(descriptor)  # type: ignore[no-untyped-call]
            devices.append(CtapHidDevice(descriptor, connection))
        except Exception as exc:
            log.info("cannot open HID device %s: %s", descriptor.path, type(exc).__name__)
    return devices


def _close(device: CtapDevice) -> None:
    try:
        device.close()
    except OSError as exc:  # already gone with the key
        log.debug("closing a security key failed: %s", exc)


class KeyFinder:
    """Looks for keys when a ceremony starts and about every second; new ones join it.

    It owns the devices it found: each is closed once, by `forget` or `close`.
    """

    def __init__(self, list_keys: ListKeys | None, start: Callable[[str, CtapDevice], None]):
        self._list_keys = list_keys
        self._start = start
        self._seen: dict[str, CtapDevice] = {}

    def forget(self, ident: str) -> None:
        """A key pulled out may come back: close it, and offer it again when it is listed."""
        device = self._seen.pop(ident, None)
        if device is not None:
            _close(device)

    def close(self) -> None:
        """Close every key this ceremony opened (once their threads have ended)."""
        for device in self._seen.values():
            _close(device)
        self._seen.clear()

    async def poll(self) -> None:
        devices = await in_thread(self._list, threading.Event(), "hybrid-key-discovery")
        for device in devices:
            ident = device_id(device)
            known = self._seen.get(ident)
            if known is not None:
                if known is not device:
                    _close(device)  # a second handle on a key already offered (or dropped)
                continue
            self._seen[ident] = device
            self._start(ident, device)

    async def keep_looking(self) -> None:
        while True:
            await asyncio.sleep(KEY_POLL_INTERVAL)
            await self.poll()

    def _list(self) -> list[CtapDevice]:
        if self._list_keys is None:
            return hid_keys(set(self._seen))
        try:
            devices = list(self._list_keys())
        except OSError as exc:  # a key vanishing while being listed
            log.info("listing security keys failed: %s", exc)
            return []
        wrong = [type(d).__name__ for d in devices if not isinstance(d, CtapDevice)]
        if wrong:
            raise TypeError(f"security_keys() must return fido2.ctap.CtapDevices, not {wrong[0]}")
        return devices
