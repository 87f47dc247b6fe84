"""A software /dev/hidraw in front of a `Bridge`, for tests and benchmarks where the kernel
has no uhid: python-fido2's real CTAPHID host talks to the bridge's real CTAPHID side.

Reports cross threads the way they cross the kernel: the program's writes (with hidraw's
leading report-ID byte) reach the key on its event loop, the key's input reports queue up
for the program's blocking reads. The VM tests run the same over a real uhid/hidraw pair.
"""

from __future__ import annotations

import asyncio
import errno
import queue
from collections.abc import Callable
from typing import Final

from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection

from hybrid.authenticator.security_key_hid import hid_descriptor

from .daemon import Bridge
from .key import BridgeKey

#: A program reading a silent key gives up long after any test's own bound.
READ_TIMEOUT: Final = 60.0


class LoopbackHidraw(CtapHidConnection):
    """One program's handle on the bridge's device."""

    def __init__(self, bridge: Bridge, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._inbox: queue.Queue[bytes] = queue.Queue()
        self.key: BridgeKey = bridge.attach(self._deliver)
        self.closed = False
        #: Called with each input report as the program reads it (benchmarks time keepalives).
        self.on_read: Callable[[bytes], None] | None = None

    def _deliver(self, report: bytes) -> None:
        self._inbox.put(report)

    def write_packet(self, data: bytes) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "closed")
        self._loop.call_soon_threadsafe(self.key.receive, b"\0" + bytes(data))

    def read_packet(self) -> bytes:
        try:
            report = self._inbox.get(timeout=READ_TIMEOUT)
        except queue.Empty:
            raise OSError(errno.ETIMEDOUT, "the key sent nothing") from None
        if self.on_read is not None:
            self.on_read(report)
        return report

    def close(self) -> None:
        self.closed = True


def open_device(connection: LoopbackHidraw) -> CtapHidDevice:
    """python-fido2's device on the loopback (call from a worker thread: it sends INIT)."""
    return CtapHidDevice(hid_descriptor("loopback:bridge", "fido-hybrid phone bridge"), connection)
