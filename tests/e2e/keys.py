"""A software security key in a virtual USB port, and a person who touches it when asked."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fido2.ctap import CtapDevice

from hybrid.authenticator import SoftwareSecurityKey
from hybrid.authenticator.security_key_hid import VirtualHidConnection
from hybrid.status import Stage, Status

#: Threads the ceremony starts; none may be alive once it has ended.
CEREMONY_THREADS = ("hybrid-security-key", "hybrid-key-discovery")


class UsbPort:
    """`security_keys` for `HybridClient`: the key while it is plugged in (python-fido2's real
    `CtapHidDevice`), noting every handle so a test can check they were all closed."""

    def __init__(self, key: SoftwareSecurityKey) -> None:
        self.key = key
        self.connections: list[VirtualHidConnection] = []

    def __call__(self) -> list[CtapDevice]:
        devices = self.key.plugged_devices()
        for connection in self.key.hid.connections:
            if connection not in self.connections:
                self.connections.append(connection)
        return list(devices)

    def all_closed(self) -> bool:
        """Whether the ceremony closed every handle it was given."""
        return all(connection.closed for connection in self.connections)


@dataclass
class Person:
    """`on_status`: records every status; touches the key when it asks (if `touches`).

    `react` may add behaviour per status (unplug the key, start the phone, ...).
    """

    touch: threading.Event = field(default_factory=threading.Event)
    touches: bool = True
    statuses: list[Status] = field(default_factory=list)
    react: Callable[[Status], Awaitable[None] | None] | None = None
    seen: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, status: Status) -> None:
        self.statuses.append(status)
        if status.stage is Stage.TOUCH_KEY:
            self.seen.set()
            if self.touches:
                self.touch.set()
        if self.react is not None:
            result = self.react(status)
            if result is not None:
                await result

    def stages(self) -> list[Stage]:
        return [status.stage for status in self.statuses]

    def of(self, stage: Stage) -> list[Status]:
        return [status for status in self.statuses if status.stage is stage]


def no_qr(url: str) -> None:
    """`show_qr` for a keys-only ceremony, which must never show a code."""
    raise AssertionError(f"a keys-only ceremony showed a QR code: {url}")


def ceremony_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(CEREMONY_THREADS)]


async def key_idle(key: SoftwareSecurityKey, within: float = 3.0) -> bool:
    """Whether the key's own command thread has ended (it stopped waiting for a touch)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(t.name == "security-key-ctap" and t.is_alive() for t in threading.enumerate()):
            return True
        await asyncio.sleep(0.02)
    return False
