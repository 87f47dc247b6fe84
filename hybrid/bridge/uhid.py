"""`UhidDevice`: a virtual HID device through the kernel's /dev/uhid, driven from asyncio.

The kernel turns it into a real HID device (and a /dev/hidraw node) that every program sees
as plugged in. Output reports programs write arrive through `on_output`; `send_input` gives
them input reports. Closing destroys the device, and so does the kernel if this process dies
(it closes /dev/uhid), so a crash never leaves a ghost key behind.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable
from typing import Final

from hybrid.errors import BridgeError, BridgeReason

from . import uhid_events
from .uhid_events import DeviceInfo, Lifecycle, Output, ReportRequest

log = logging.getLogger(__name__)

UHID_PATH: Final = "/dev/uhid"

OnOutput = Callable[[bytes], None]
#: Called when the last program closes the device (UHID_CLOSE).
OnClosed = Callable[[], None]


def open_uhid(path: str = UHID_PATH) -> int:
    """Open /dev/uhid for a non-blocking event loop; `BridgeError` says what to do if not."""
    try:
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise BridgeError(BridgeReason.NO_UHID, f"{path}: {exc.strerror}") from exc
    except PermissionError as exc:
        raise BridgeError(BridgeReason.UHID_DENIED, f"{path}: {exc.strerror}") from exc
    except OSError as exc:
        raise BridgeError(BridgeReason.UHID_FAILED, f"{path}: {exc.strerror}") from exc


class UhidDevice:
    """One virtual HID device; use as `async with UhidDevice(info, on_output) as device`."""

    def __init__(
        self,
        info: DeviceInfo,
        on_output: OnOutput,
        path: str = UHID_PATH,
        on_closed: OnClosed | None = None,
    ) -> None:
        self.info = info
        self.path = path
        self._on_output = on_output
        self._on_closed = on_closed
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Set when /dev/uhid fails under us: the device is gone, the bridge must stop.
        self.failed: asyncio.Future[BridgeError] | None = None
        #: Whether some program has the hidraw node open now (OPEN/CLOSE from the kernel).
        self.opened = False

    async def __aenter__(self) -> UhidDevice:
        self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Create the device. Its hidraw node appears once the kernel has started it."""
        self._loop = asyncio.get_running_loop()
        self.failed = self._loop.create_future()
        fd = open_uhid(self.path)
        try:
            self._write(fd, uhid_events.create2(self.info))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._loop.add_reader(fd, self._readable)

    def send_input(self, report: bytes) -> None:
        """Give every reader of the device one input report."""
        if self._fd is None:
            raise BridgeError(BridgeReason.UHID_FAILED, "the virtual device is closed")
        self._write(self._fd, uhid_events.input2(report))

    def close(self) -> None:
        """Destroy the device; safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        assert self._loop is not None
        self._loop.remove_reader(fd)
        try:
            os.write(fd, uhid_events.destroy())
        except OSError as exc:  # closing the fd destroys it anyway
            log.debug("UHID_DESTROY failed: %s", exc.strerror)
        finally:
            os.close(fd)

    @staticmethod
    def _write(fd: int, event: bytes) -> None:
        try:
            written = os.write(fd, event)
        except OSError as exc:
            raise BridgeError(BridgeReason.UHID_FAILED, f"writing to uhid: {exc.strerror}") from exc
        if written != len(event):
            raise BridgeError(BridgeReason.UHID_FAILED, f"uhid took {written} of {len(event)} B")

    def _readable(self) -> None:
        fd = self._fd
        if fd is None:
            return
        try:
            raw = os.read(fd, uhid_events.EVENT_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(BridgeError(BridgeReason.UHID_FAILED, f"reading uhid: {exc.strerror}"))
            return
        try:
            event = uhid_events.parse(raw)
        except BridgeError as exc:
            self._fail(exc)
            return
        if isinstance(event, Output):
            self._on_output(event.data)
        elif isinstance(event, Lifecycle):
            log.debug("uhid %s", event.type.name)
            if event.type in (uhid_events.EventType.OPEN, uhid_events.EventType.CLOSE):
                self.opened = event.type == uhid_events.EventType.OPEN
                if not self.opened and self._on_closed is not None:
                    self._on_closed()
        elif isinstance(event, ReportRequest):
            # A FIDO device has no feature reports: refuse at once, or the caller waits 5 s.
            self._write(fd, uhid_events.report_reply(event, errno.EIO))

    def _fail(self, error: BridgeError) -> None:
        log.error("%s", error)
        if self.failed is not None and not self.failed.done():
            self.failed.set_result(error)
        assert self._loop is not None
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
