"""CTAPHID's byte layout (CTAP 2.1 §11.2.4): report size, packet headers, error codes.

The one place that knows how a message is cut into 64-byte reports, so that the key's state
machine, its drivers and the tests that forge raw packets all frame alike.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final

from fido2.hid import CAPABILITY, TYPE_INIT

REPORT_SIZE: Final = 64
BROADCAST_CID: Final = 0xFFFFFFFF
INIT_HEADER: Final = 7  # CID(4) CMD(1) BCNT(2)
CONT_HEADER: Final = 5  # CID(4) SEQ(1)
#: An init packet and 128 continuation packets (sequence numbers 0..127): 7609 bytes.
MAX_MESSAGE_SIZE: Final = REPORT_SIZE - INIT_HEADER + 128 * (REPORT_SIZE - CONT_HEADER)
#: How often a driver should send a KEEPALIVE while a request runs (the spec asks ~100 ms).
KEEPALIVE_INTERVAL: Final = 0.1
#: How long a half-sent message may wait for its next packet before it is dropped (MSG_TIMEOUT).
MESSAGE_TIMEOUT: Final = 0.5
CTAPHID_PROTOCOL_VERSION: Final = 2
DEVICE_VERSION: Final = (0, 1, 0)
#: No MSG (NMSG): the key speaks CTAP2 only, so U2F hosts fall back to CBOR.
CAPABILITIES: Final = CAPABILITY.WINK | CAPABILITY.CBOR | CAPABILITY.NMSG


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


class KeepaliveStatus(IntEnum):
    """CTAPHID_KEEPALIVE status bytes (CTAP 2.1 §11.2.9.2.1)."""

    PROCESSING = 1
    UP_NEEDED = 2


def frame_message(cid: int, cmd: int, payload: bytes) -> list[bytes]:
    """Split one CTAPHID message into zero-padded 64-byte init/continuation packets.

    Raises `ValueError` for a payload over `MAX_MESSAGE_SIZE`: its sequence numbers would wrap.
    """
    if len(payload) > MAX_MESSAGE_SIZE:
        raise ValueError(f"a CTAPHID message holds at most {MAX_MESSAGE_SIZE} bytes")
    header = struct.pack(">IBH", cid, TYPE_INIT | cmd, len(payload))
    first = REPORT_SIZE - INIT_HEADER
    packets = [(header + payload[:first]).ljust(REPORT_SIZE, b"\0")]
    rest, seq = payload[first:], 0
    while rest:
        chunk, rest = rest[: REPORT_SIZE - CONT_HEADER], rest[REPORT_SIZE - CONT_HEADER :]
        packets.append((struct.pack(">IB", cid, seq) + chunk).ljust(REPORT_SIZE, b"\0"))
        seq += 1
    return packets
