"""CTAPHID (CTAP 2.1 §11.2) in software: the USB side of a virtual security key.

`VirtualCtapHid` is the key's HID transport: it reassembles 64-byte output reports into
messages, allocates channels (INIT), answers PING and WINK itself, and runs each CBOR command on
a worker thread through a pluggable, synchronous `CtapHandler`. While a command runs, a host that
reads gets a KEEPALIVE every `KEEPALIVE_INTERVAL` seconds (PROCESSING, or UPNEEDED while the
handler waits for a touch), and a CANCEL on that channel sets `HidCommand.cancelled`.

`open()` returns a `fido2.hid.base.CtapHidConnection`, so python-fido2's own `CtapHidDevice`
runs unchanged on top. Like hidraw, every open connection sees every input report. `unplug()`
makes all reads and writes fail with `OSError(ENODEV)`, as a vanished device does.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, Protocol

from fido2.ctap import STATUS
from fido2.hid import CAPABILITY, CTAPHID, TYPE_INIT
from fido2.hid.base import CtapHidConnection, HidDescriptor

from hybrid.ctap import CtapStatus

logger = logging.getLogger(__name__)

REPORT_SIZE: Final = 64
BROADCAST_CID: Final = 0xFFFFFFFF
_INIT_HEADER: Final = 7  # CID(4) CMD(1) BCNT(2)
_CONT_HEADER: Final = 5  # CID(4) SEQ(1)
MAX_MESSAGE_SIZE: Final = REPORT_SIZE - _INIT_HEADER + 128 * (REPORT_SIZE - _CONT_HEADER)
KEEPALIVE_INTERVAL: Final = 0.1
#: How long a half-sent message may wait for its next packet before it is dropped (MSG_TIMEOUT).
MESSAGE_TIMEOUT: Final = 0.5
CTAPHID_PROTOCOL_VERSION: Final = 2
DEVICE_VERSION: Final = (0, 1, 0)
CAPABILITIES: Final = CAPABILITY.WINK | CAPABILITY.CBOR | CAPABILITY.NMSG
#: pid.codes test VID/PID: no real product is registered under them.
VENDOR_ID: Final = 0x1209
PRODUCT_ID: Final = 0x0001


class HidError(IntEnum):
    """CTAPHID_ERROR codes (CTAP 2.1 §11.2.9.1.6)."""

    INVALID_CMD = 0x01
    INVALID_PAR = 0x02
    INVALID_LEN = 0x03
    INVALID_SEQ = 0x04
    MSG_TIMEOUT = 0x05
    CHANNEL_BUSY = 0x06
    INVALID_CHANNEL = 0x0B
    OTHER = 0x7F


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


def frame_message(cid: int, cmd: int, payload: bytes) -> list[bytes]:
    """Split one CTAPHID message into zero-padded 64-byte init/continuation packets."""
    header = struct.pack(">IBH", cid, TYPE_INIT | cmd, len(payload))
    first = REPORT_SIZE - _INIT_HEADER
    packets = [(header + payload[:first]).ljust(REPORT_SIZE, b"\0")]
    rest, seq = payload[first:], 0
    while rest:
        chunk, rest = rest[: REPORT_SIZE - _CONT_HEADER], rest[REPORT_SIZE - _CONT_HEADER :]
        packets.append((struct.pack(">IB", cid, seq) + chunk).ljust(REPORT_SIZE, b"\0"))
        seq += 1
    return packets


@dataclass
class _Assembly:
    cid: int
    cmd: int
    length: int
    data: bytearray
    started: float
    next_seq: int = 0


@dataclass
class _Running:
    cid: int
    command: HidCommand
    discard: bool = False  # the channel was re-INITed or the key unplugged: drop the answer


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
    """The CTAPHID transport of one virtual key, in front of a synchronous `CtapHandler`."""

    def __init__(self, handler: CtapHandler, message_timeout: float = MESSAGE_TIMEOUT) -> None:
        self._handler = handler
        self._message_timeout = message_timeout
        self._cond = threading.Condition()
        self._connections: list[VirtualHidConnection] = []
        self._channels: set[int] = set()
        self._assembly: _Assembly | None = None
        self._running: _Running | None = None
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
            if self._running is not None:
                self._running.discard = True
                self._running.command.cancelled.set()
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
                    running = self._running
                    if running is not None and not running.discard:
                        status = running.command.keepalive_status
                        return frame_message(running.cid, CTAPHID.KEEPALIVE, bytes([status]))[0]
                    continue
                self._cond.wait(remaining)

    def _write(self, connection: VirtualHidConnection, packet: bytes) -> None:
        with self._cond:
            self._check_open(connection)
            if len(packet) != REPORT_SIZE:
                raise OSError(errno.EINVAL, f"output reports are {REPORT_SIZE} bytes")
            self._receive(packet)

    # --- CTAPHID state machine (under self._cond) ------------------------------------------------

    def _send(self, cid: int, cmd: int, payload: bytes) -> None:
        packets = frame_message(cid, cmd, payload)
        for connection in self._connections:
            connection.inbox.extend(packets)
        self._cond.notify_all()

    def _error(self, cid: int, error: HidError) -> None:
        logger.debug("CTAPHID error %s on channel %08x", error.name, cid)
        self._send(cid, CTAPHID.ERROR, bytes([error]))

    def _receive(self, packet: bytes) -> None:
        (cid,) = struct.unpack_from(">I", packet)
        stale = self._assembly
        if stale is not None and time.monotonic() - stale.started > self._message_timeout:
            self._assembly = None  # its sender went quiet: free the key for everyone else
            self._error(stale.cid, HidError.MSG_TIMEOUT)
        if not packet[4] & TYPE_INIT:
            self._continue(cid, packet[4], packet[_CONT_HEADER:])
            return
        cmd = packet[4] & ~TYPE_INIT
        (length,) = struct.unpack_from(">H", packet, 5)
        data = packet[_INIT_HEADER : _INIT_HEADER + length]
        if cmd == CTAPHID.INIT:
            self._init(cid, length, data)
        elif cid not in self._channels:
            self._error(cid, HidError.INVALID_CHANNEL)
        elif cmd == CTAPHID.CANCEL:
            if self._running is not None and self._running.cid == cid:
                self._running.command.cancelled.set()
        elif self._running is not None:
            self._error(cid, HidError.CHANNEL_BUSY)
        elif self._assembly is not None:
            same_channel = self._assembly.cid == cid
            if same_channel:
                self._assembly = None
            self._error(cid, HidError.INVALID_SEQ if same_channel else HidError.CHANNEL_BUSY)
        elif length > MAX_MESSAGE_SIZE:
            self._error(cid, HidError.INVALID_LEN)
        else:
            self._assembly = _Assembly(cid, cmd, length, bytearray(data), time.monotonic())
            self._complete_if_whole()

    def _continue(self, cid: int, seq: int, data: bytes) -> None:
        assembly = self._assembly
        if assembly is None:
            return  # spurious continuation packets are ignored (§11.2.4)
        if assembly.cid != cid:
            self._error(cid, HidError.CHANNEL_BUSY)
        elif seq != assembly.next_seq:
            self._assembly = None
            self._error(cid, HidError.INVALID_SEQ)
        else:
            assembly.next_seq += 1
            assembly.data += data[: assembly.length - len(assembly.data)]
            self._complete_if_whole()

    def _init(self, cid: int, length: int, nonce: bytes) -> None:
        if cid != BROADCAST_CID and cid not in self._channels:
            self._error(cid, HidError.INVALID_CHANNEL)
            return
        if length != 8:
            self._error(cid, HidError.INVALID_LEN)
            return
        if self._assembly is not None and self._assembly.cid == cid:
            self._assembly = None
        if cid == BROADCAST_CID:
            new_cid = self._allocate_channel()
        else:  # resynchronise an existing channel: abandon what it was doing
            new_cid = cid
            if self._running is not None and self._running.cid == cid:
                self._running.discard = True
                self._running.command.cancelled.set()
        body = nonce + struct.pack(
            ">IB3BB", new_cid, CTAPHID_PROTOCOL_VERSION, *DEVICE_VERSION, CAPABILITIES
        )
        self._send(cid, CTAPHID.INIT, body)

    def _allocate_channel(self) -> int:
        while True:
            cid = int.from_bytes(os.urandom(4), "big")
            if cid not in (0, BROADCAST_CID) and cid not in self._channels:
                self._channels.add(cid)
                return cid

    def _complete_if_whole(self) -> None:
        assembly = self._assembly
        if assembly is None or len(assembly.data) < assembly.length:
            return
        self._assembly = None
        cid, cmd, payload = assembly.cid, assembly.cmd, bytes(assembly.data)
        if cmd == CTAPHID.PING:
            self._send(cid, CTAPHID.PING, payload)
        elif cmd == CTAPHID.WINK:
            self.winks += 1
            self._send(cid, CTAPHID.WINK, b"")
        elif cmd == CTAPHID.CBOR and payload:
            self._start(cid, payload)
        elif cmd == CTAPHID.CBOR:
            self._error(cid, HidError.INVALID_LEN)
        else:  # MSG (we set NMSG), LOCK and vendor commands are not supported
            self._error(cid, HidError.INVALID_CMD)

    def _start(self, cid: int, request: bytes) -> None:
        if self._worker is not None:
            self._worker.join()  # it already answered; this only reaps the finished thread
        running = _Running(cid, HidCommand())
        self._running = running
        self._worker = threading.Thread(
            target=self._run, args=(running, request), name="security-key-ctap", daemon=True
        )
        self._worker.start()

    def _run(self, running: _Running, request: bytes) -> None:
        try:
            response = self._handler.handle_cbor(request, running.command)
        except Exception:  # the key must answer, whatever its handler does
            logger.exception("CTAP handler failed")
            response = bytes([CtapStatus.OTHER])
        if len(response) > MAX_MESSAGE_SIZE:
            logger.error("CTAP response of %d bytes does not fit CTAPHID", len(response))
            response = bytes([CtapStatus.REQUEST_TOO_LARGE])
        with self._cond:
            if self._running is running:
                self._running = None
            if not running.discard and self._present:
                self._send(running.cid, CTAPHID.CBOR, response)
            self._cond.notify_all()
