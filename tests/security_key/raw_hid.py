"""Raw CTAPHID helpers for the tests that send what python-fido2's host never would."""

from __future__ import annotations

import os
import struct

from fido2.hid import CTAPHID

from hybrid.authenticator.security_key_hid import (
    BROADCAST_CID,
    HidError,
    VirtualHidConnection,
    frame_message,
)


def init_channel(connection: VirtualHidConnection) -> int:
    nonce = os.urandom(8)
    connection.write_packet(frame_message(BROADCAST_CID, CTAPHID.INIT, nonce)[0])
    reply = connection.read_packet()
    assert reply[:7] == struct.pack(">IBH", BROADCAST_CID, 0x80 | CTAPHID.INIT, 17)
    assert reply[7:15] == nonce
    cid: int = struct.unpack_from(">I", reply, 15)[0]
    return cid


def read_reply(connection: VirtualHidConnection) -> tuple[int, int, bytes]:
    """(cid, cmd, first packet payload) of the next non-keepalive reply."""
    while True:
        packet = connection.read_packet()
        cid, cmd, length = struct.unpack_from(">IBH", packet)
        if cmd != 0x80 | CTAPHID.KEEPALIVE:
            return cid, cmd & 0x7F, packet[7 : 7 + length]


def hid_error(connection: VirtualHidConnection) -> tuple[int, HidError]:
    cid, cmd, payload = read_reply(connection)
    assert cmd == CTAPHID.ERROR
    return cid, HidError(payload[0])
