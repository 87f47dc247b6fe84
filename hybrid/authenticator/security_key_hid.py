"""CTAPHID (CTAP 2.1 §11.2) in software: the USB side of a virtual security key.

`VirtualCtapHid` is a thin threaded driver of `hybrid.ctaphid.CtapHidKey`, the sans-I/O machine
that holds every channel rule: it feeds the machine each output report, runs each CBOR command
on a worker thread through a pluggable, synchronous `CtapHandler`, and hands the machine's input
reports to every open connection. While a command runs, a host that reads gets a KEEPALIVE every
`KEEPALIVE_INTERVAL` seconds (PROCESSING, or UPNEEDED while the handler waits for a touch), and
a CANCEL on that channel (or a re-INIT of it) sets `HidCommand.cancelled`.

`open()` returns a `fido2.hid.base.CtapHidConnection`, so python-fido2's own `CtapHidDevice`
runs unchanged on top. Like hidraw, every open connection sees every input report. `unplug()`
makes all reads and writes fail with `OSError(ENODEV)`, as a vanished device does.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Final, Protocol

from fido2.ctap import STATUS
from fido2.hid.base import CtapHidConnection, HidDescriptor

from hybrid.ctap import CtapStatus
from hybrid.ctaphid import (
    BROADCAST_CID,
    CAPABILITIES,
    CTAPHID_PROTOCOL_VERSION,
    DEVICE_VERSION,
    KEEPALIVE_INTERVAL,
    MAX_MESSAGE_SIZE,
    MESSAGE_TIMEOUT,
    REPORT_SIZE,
    CancelRequested,
    CborRequest,
    CtapHidKey,
    HidError,
    HidEvent,
    RequestAbandoned,
    Winked,
    frame_message,
)

__all__ = [
    "BROADCAST_CID",
    "CAPABILITIES",
    "CTAPHID_PROTOCOL_VERSION",
    "DEVICE_VERSION",
    "KEEPALIVE_INTERVAL",
    "MAX_MESSAGE_SIZE",
    "MESSAGE_TIMEOUT",
    "PRODUCT_ID",
    "REPORT_SIZE",
    "VENDOR_ID",
    "CtapHandler",
    "HidCommand",
    "HidError",
    "VirtualCtapHid",
    "VirtualHidConnection",
    "frame_message",
    "hid_descriptor",
]

logger = logging.getLogger(__name__)

#: pid.codes test VID/PID: no real product is registered under them.
VENDOR_ID: Final = 0x1209
PRODUCT_ID: Final = 0x0001


@dataclass
class HidCommand:
    """What the HID layer shares with the handler while one CBOR command runs."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    #: What KEEPALIVE reports: PROCESSING, or UPNEEDED while the handler waits for a touch.
    keepalive_status: STATUS = STATUS.PROCESSING


class CtapHandler(Protocol):
    """The key's CTAP2 logic; may block (e.g. for a touch) and must watch `command.cancelled`."""

    def handle_cbor(self, request: bytes, command: HidCommand) -> bytes:
        """Answer `cmd ‖ CBOR` with `status ‖ CBOR`."""
        ...


def hid_descriptor(
    path: str = "virtual:fido-hybrid-key",
    product_name: str = "fido-hybrid software security key",
    serial_number: str | None = None,
) -> HidDescriptor:
    """A descriptor matching `VirtualCtapHid`'s 64-byte reports, for `CtapHidDevice`."""
    return HidDescriptor(
        path, VENDOR_ID, PRODUCT_ID, REPORT_SIZE, REPORT_SIZE, product_name, serial_number
    )


class VirtualHidConnection(CtapHidConnection):
    """One open handle on a `VirtualCtapHid` (what `open_connection` gives for hidraw)."""

    def __init__(self, device: VirtualCtapHid) -> None:
        self._device = device
        self.inbox: deque[bytes] = deque()
        self.closed = False

    def read_packet(self) -> bytes:
        return self._device._read(self)

    def write_packet(self, data: bytes) -> None:
        self._device._write(self, bytes(data))

    def close(self) -> None:
        self._device._detach(self)


class VirtualCtapHid:
    """The CTAPHID transport of one virtual key, in front of a synchronous `CtapHandler`.

    Everything below holds `_cond` while it calls the machine and then hands every report the
    machine queued to the connections (`_flush`), so its queue is empty between calls.
    """

    def __init__(self, handler: CtapHandler, message_timeout: float = MESSAGE_TIMEOUT) -> None:
        self._handler = handler
        self._key = CtapHidKey(message_timeout=message_timeout)
        self._cond = threading.Condition()
        self._connections: list[VirtualHidConnection] = []
        self._command: HidCommand | None = None  # the running request's, until it answered
        self._worker: threading.Thread | None = None
        self._present = True
        self.winks = 0

    @property
    def plugged_in(self) -> bool:
        return self._present

    @property
    def connections(self) -> tuple[VirtualHidConnection, ...]:
        """The handles open on this key now."""
        with self._cond:
            return tuple(self._connections)

    def open(self) -> VirtualHidConnection:
        with self._cond:
            if not self._present:
                raise OSError(errno.ENODEV, "the security key was unplugged")
            connection = VirtualHidConnection(self)
            self._connections.append(connection)
            return connection

    def unplug(self) -> None:
        """Pull the key out: cancel the running command, join its thread, fail all I/O."""
        with self._cond:
            self._present = False
            self._key.reset()  # the running command's answer will be dropped
            if self._command is not None:
                self._command.cancelled.set()
            worker, self._worker = self._worker, None
            self._cond.notify_all()
        if worker is not None and worker is not threading.current_thread():
            worker.join()

    close = unplug

    # --- host side I/O (called from the host's thread) -----------------------------------------

    def _check_open(self, connection: VirtualHidConnection) -> None:
        if not self._present:
            raise OSError(errno.ENODEV, "the security key was unplugged")
        if connection.closed:
            raise OSError(errno.EBADF, "this security key connection is closed")

    def _detach(self, connection: VirtualHidConnection) -> None:
        with self._cond:
            connection.closed = True
            if connection in self._connections:
                self._connections.remove(connection)
            self._cond.notify_all()

    def _read(self, connection: VirtualHidConnection) -> bytes:
        with self._cond:
            deadline = time.monotonic() + KEEPALIVE_INTERVAL
            while True:
                self._check_open(connection)
                if connection.inbox:
                    return connection.inbox.popleft()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    deadline = time.monotonic() + KEEPALIVE_INTERVAL
                    if self._command is not None:
                        # Only this reader waited long enough to be owed a keepalive.
                        self._key.keepalive(self._command.keepalive_status)
                        keepalive = self._key.data_to_send()
                        if keepalive:
                            return keepalive[0]
                    continue
                self._cond.wait(remaining)

    def _write(self, connection: VirtualHidConnection, packet: bytes) -> None:
        with self._cond:
            self._check_open(connection)
            if len(packet) != REPORT_SIZE:
                raise OSError(errno.EINVAL, f"output reports are {REPORT_SIZE} bytes")
            for event in self._key.receive_report(packet, time.monotonic()):
                self._handle(event)
            self._flush()

    # --- driving the machine (under self._cond) -------------------------------------------------

    def _flush(self) -> None:
        packets = self._key.data_to_send()
        if packets:
            for connection in self._connections:
                connection.inbox.extend(packets)
            self._cond.notify_all()

    def _handle(self, event: HidEvent) -> None:
        if isinstance(event, CborRequest):
            self._start(event)
        elif isinstance(event, CancelRequested | RequestAbandoned):
            if self._command is not None:
                self._command.cancelled.set()
        elif isinstance(event, Winked):
            self.winks += 1

    def _start(self, request: CborRequest) -> None:
        if self._worker is not None:
            self._worker.join()  # it already answered; this only reaps the finished thread
        command = HidCommand()
        self._command = command
        self._worker = threading.Thread(
            target=self._run, args=(request, command), name="security-key-ctap", daemon=True
        )
        self._worker.start()

    def _run(self, request: CborRequest, command: HidCommand) -> None:
        try:
            response = self._handler.handle_cbor(request.request, command)
        except Exception:  # the key must answer, whatever its handler does
            logger.exception("CTAP handler failed")
            response = bytes([CtapStatus.OTHER])
        with self._cond:
            self._key.answer(request.cid, response)  # dropped if abandoned or unplugged
            if self._command is command:
                self._command = None
            self._flush()
