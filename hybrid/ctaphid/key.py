"""The device side of CTAPHID (CTAP 2.1 §11.2) as a pure state machine: `CtapHidKey`.

Every key the project emulates speaks the same USB framing: the software security key
(`hybrid.authenticator.security_key_hid.VirtualCtapHid`, threads) and the uhid bridge (a kernel
device). Both drive this one machine: feed each 64-byte output report to `receive_report()`
with the time, act on the events it returns, answer each `CborRequest` with `answer()`, call
`keepalive()` while it runs, and write what `data_to_send()` hands over. The machine never
waits, reads a clock or touches a device (like websockets' `Protocol` or h11), so every channel
rule is a unit test with raw packets.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from fido2.hid import CAPABILITY, CTAPHID, TYPE_INIT

from hybrid.ctap import CtapStatus
from hybrid.ctaphid.framing import (
    BROADCAST_CID,
    CAPABILITIES,
    CONT_HEADER,
    CTAPHID_PROTOCOL_VERSION,
    DEVICE_VERSION,
    INIT_HEADER,
    MAX_MESSAGE_SIZE,
    MESSAGE_TIMEOUT,
    REPORT_SIZE,
    HidError,
    frame_message,
)

logger = logging.getLogger(__name__)

#: Draws from `new_channel_id` before a broadcast INIT is refused (only a broken generator that
#: keeps returning 0, the broadcast ID or IDs in use gets there).
_ALLOCATION_ATTEMPTS: Final = 64
_NONCE_SIZE: Final = 8


@dataclass(frozen=True)
class CborRequest:
    """A complete CTAPHID_CBOR message, `command byte ‖ CBOR`, on channel `cid`.

    The key is busy (CHANNEL_BUSY to everyone else) until the driver calls `answer(cid, …)`.
    """

    cid: int
    request: bytes


@dataclass(frozen=True)
class CancelRequested:
    """CTAPHID_CANCEL on the running request's channel: end it (CTAP2_ERR_KEEPALIVE_CANCEL)."""

    cid: int


@dataclass(frozen=True)
class RequestAbandoned:
    """The running request's channel was re-INITed: stop its work, its answer will be dropped.

    The driver still calls `answer()` once the work has stopped: until then the key stays busy,
    so a late reply can never be taken for the answer to a newer request on the same channel.
    """

    cid: int


@dataclass(frozen=True)
class Winked:
    """CTAPHID_WINK (already answered): show the user which key this is."""

    cid: int


HidEvent = CborRequest | CancelRequested | RequestAbandoned | Winked


@dataclass
class _Assembly:
    """A message whose init packet arrived and whose continuation packets are still due."""

    cid: int
    cmd: int
    length: int
    data: bytearray
    #: When its last packet came: a slow but steady sender (a loaded host) is not cut off.
    last_packet: float
    next_seq: int = 0


@dataclass
class _Running:
    cid: int
    abandoned: bool = False


def _random_channel_id() -> int:
    return int.from_bytes(os.urandom(4), "big")


class CtapHidKey:
    """Device side of CTAPHID as a pure state machine: output reports in, events out, input
    reports to send.

    One message is assembled at a time and one CBOR request runs at a time, whatever the
    channel (a key has one button). INIT, PING and WINK are answered by the machine itself;
    MSG (the key says NMSG), LOCK and vendor commands get INVALID_CMD.
    """

    def __init__(
        self,
        *,
        capabilities: int = CAPABILITIES,
        device_version: tuple[int, int, int] = DEVICE_VERSION,
        message_timeout: float = MESSAGE_TIMEOUT,
        new_channel_id: Callable[[], int] | None = None,
    ) -> None:
        if not all(0 <= byte <= 0xFF for byte in (capabilities, *device_version)):
            raise ValueError("capabilities and device version numbers are single bytes")
        self._capabilities = capabilities
        self._device_version = device_version
        self._message_timeout = message_timeout
        self._new_channel_id = new_channel_id or _random_channel_id
        self._channels: set[int] = set()
        self._assembly: _Assembly | None = None
        self._running: _Running | None = None
        self._outgoing: list[bytes] = []
        self._events: list[HidEvent] = []

    @property
    def running(self) -> int | None:
        """The channel of the request that runs now (abandoned or not), None when idle."""
        return None if self._running is None else self._running.cid

    def data_to_send(self) -> list[bytes]:
        """The 64-byte input reports queued since the last call, in order (drains the queue)."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def reset(self) -> None:
        """Unplug: forget channels, the half-received message, the running request and the
        reports not yet sent (a later `answer()` is dropped)."""
        self._channels.clear()
        self._assembly = None
        self._running = None
        self._outgoing.clear()

    def expire(self, now: float) -> None:
        """Drop a half-sent message whose next packet is `message_timeout` late with
        MSG_TIMEOUT, so that a sender that went quiet does not hold the key for everyone else."""
        stale = self._assembly
        if stale is not None and now - stale.last_packet > self._message_timeout:
            self._assembly = None
            self._error(stale.cid, HidError.MSG_TIMEOUT)

    def receive_report(self, report: bytes, now: float) -> list[HidEvent]:
        """Take one output report from the host; return what the driver must act on.

        A report that is not 64 bytes long cannot be CTAPHID: it is logged and ignored, so
        nothing a host writes can make the machine raise.
        """
        if len(report) != REPORT_SIZE:
            logger.warning("ignoring a %d-byte output report (CTAPHID uses 64)", len(report))
            return []
        self.expire(now)
        report = bytes(report)
        (cid,) = struct.unpack_from(">I", report)
        if report[4] & TYPE_INIT:
            self._initiate(cid, report, now)
        else:
            self._continue(cid, report[4], report[CONT_HEADER:], now)
        events, self._events = self._events, []
        return events

    def answer(self, cid: int, reply: bytes) -> None:
        """Send `status ‖ CBOR` for the `CborRequest` running on `cid` and free the key.

        Dropped (the key is freed all the same) if the request was abandoned; ignored if none
        runs on `cid`. A reply too long for CTAPHID becomes CTAP1_ERR_REQUEST_TOO_LARGE.
        """
        running = self._running
        if running is None or running.cid != cid:
            logger.debug("dropping an answer on channel %08x: no request runs there", cid)
            return
        self._running = None
        if running.abandoned:
            logger.debug("dropping the answer of the abandoned request on channel %08x", cid)
            return
        if len(reply) > MAX_MESSAGE_SIZE:
            logger.error("CTAP response of %d bytes does not fit CTAPHID", len(reply))
            reply = bytes([CtapStatus.REQUEST_TOO_LARGE])
        self._send(cid, CTAPHID.CBOR, reply)

    def keepalive(self, status: int) -> None:
        """Queue one KEEPALIVE (a `KeepaliveStatus`) for the running request; a no-op when none
        runs or it was abandoned (its host has moved on)."""
        running = self._running
        if running is not None and not running.abandoned:
            self._send(running.cid, CTAPHID.KEEPALIVE, bytes([status]))

    # --- the channel rules ------------------------------------------------------------------

    def _send(self, cid: int, cmd: int, payload: bytes) -> None:
        self._outgoing.extend(frame_message(cid, cmd, payload))

    def _error(self, cid: int, error: HidError) -> None:
        logger.debug("CTAPHID error %s on channel %08x", error.name, cid)
        self._send(cid, CTAPHID.ERROR, bytes([error]))

    def _initiate(self, cid: int, report: bytes, now: float) -> None:
        cmd = report[4] & ~TYPE_INIT
        (length,) = struct.unpack_from(">H", report, 5)
        data = report[INIT_HEADER : INIT_HEADER + length]
        if cmd == CTAPHID.INIT:
            self._init(cid, length, data)
        elif cid not in self._channels:
            self._error(cid, HidError.INVALID_CHANNEL)
        elif cmd == CTAPHID.CANCEL:
            running = self._running
            if running is not None and running.cid == cid and not running.abandoned:
                self._events.append(CancelRequested(cid))
        elif self._running is not None:
            self._error(cid, HidError.CHANNEL_BUSY)
        elif self._assembly is not None:
            same_channel = self._assembly.cid == cid
            if same_channel:
                self._assembly = None  # a new message where a continuation was due
            self._error(cid, HidError.INVALID_SEQ if same_channel else HidError.CHANNEL_BUSY)
        elif length > MAX_MESSAGE_SIZE:
            self._error(cid, HidError.INVALID_LEN)
        else:
            self._assembly = _Assembly(cid, cmd, length, bytearray(data), now)
            self._complete_if_whole()

    def _continue(self, cid: int, seq: int, data: bytes, now: float) -> None:
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
            assembly.last_packet = now
            assembly.data += data[: assembly.length - len(assembly.data)]
            self._complete_if_whole()

    def _init(self, cid: int, length: int, nonce: bytes) -> None:
        if cid != BROADCAST_CID and cid not in self._channels:
            self._error(cid, HidError.INVALID_CHANNEL)
            return
        if length != _NONCE_SIZE:
            self._error(cid, HidError.INVALID_LEN)
            return
        if self._assembly is not None and self._assembly.cid == cid:
            self._assembly = None
        if cid == BROADCAST_CID:
            new_cid = self._allocate_channel()
            if new_cid is None:
                self._error(cid, HidError.OTHER)
                return
        else:  # resynchronise an existing channel: abandon what it was doing
            new_cid = cid
            running = self._running
            if running is not None and running.cid == cid and not running.abandoned:
                running.abandoned = True
                self._events.append(RequestAbandoned(cid))
        body = nonce + struct.pack(
            ">IB3BB",
            new_cid,
            CTAPHID_PROTOCOL_VERSION,
            *self._device_version,
            self._capabilities,
        )
        self._send(cid, CTAPHID.INIT, body)

    def _allocate_channel(self) -> int | None:
        for _ in range(_ALLOCATION_ATTEMPTS):
            cid = self._new_channel_id()
            if 0 < cid < BROADCAST_CID and cid not in self._channels:
                self._channels.add(cid)
                return cid
        logger.error("no free channel ID from %r", self._new_channel_id)
        return None

    def _complete_if_whole(self) -> None:
        assembly = self._assembly
        if assembly is None or len(assembly.data) < assembly.length:
            return
        self._assembly = None
        cid, cmd, payload = assembly.cid, assembly.cmd, bytes(assembly.data)
        if cmd == CTAPHID.PING:
            self._send(cid, CTAPHID.PING, payload)
        elif cmd == CTAPHID.WINK and self._capabilities & CAPABILITY.WINK:
            self._events.append(Winked(cid))
            self._send(cid, CTAPHID.WINK, b"")
        elif cmd == CTAPHID.CBOR and self._capabilities & CAPABILITY.CBOR:
            if not payload:
                self._error(cid, HidError.INVALID_LEN)
                return
            self._running = _Running(cid)
            self._events.append(CborRequest(cid, payload))
        else:  # MSG (we set NMSG), LOCK and vendor commands are not supported
            self._error(cid, HidError.INVALID_CMD)
