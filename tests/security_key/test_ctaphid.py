"""CTAPHID framing and channel rules (CTAP 2.1 §11.2), through python-fido2's CtapHidDevice and
raw 64-byte reports where the host library would never send the broken input."""

from __future__ import annotations

import errno
import os
import struct
import threading

import pytest
from fido2 import cbor
from fido2.ctap2.base import Ctap2
from fido2.hid import CAPABILITY, CTAPHID, CtapHidDevice
from fido2.webauthn import Aaguid

from hybrid.authenticator.security_key import SoftwareSecurityKey
from hybrid.authenticator.security_key_hid import (
    BROADCAST_CID,
    MAX_MESSAGE_SIZE,
    HidError,
    VirtualHidConnection,
    frame_message,
)
from hybrid.ctap import CtapStatus
from tests.security_key.conftest import RecordingCore
from tests.security_key.raw_hid import hid_error, init_channel, read_reply


@pytest.fixture
def raw(key: SoftwareSecurityKey) -> VirtualHidConnection:
    return key.connect()


def test_init_allocates_channels_and_reports_capabilities(key: SoftwareSecurityKey) -> None:
    first, second = key.open_device(), key.open_device()
    assert first.version == 2
    assert first.capabilities == CAPABILITY.CBOR | CAPABILITY.WINK | CAPABILITY.NMSG
    assert first._channel_id != second._channel_id
    assert BROADCAST_CID not in (first._channel_id, second._channel_id)
    first.close()
    second.close()


@pytest.mark.parametrize("size", [0, 1, 57, 58, 57 + 59, 57 + 59 + 1, 1000, MAX_MESSAGE_SIZE])
def test_ping_echoes_single_and_multi_packet_messages(device: CtapHidDevice, size: int) -> None:
    message = os.urandom(size)
    assert device.ping(message) == message


def test_wink_and_multi_packet_cbor_response(key: SoftwareSecurityKey, ctap2: Ctap2) -> None:
    ctap2.device.wink()  # type: ignore[attr-defined]
    assert key.hid.winks == 1
    assert ctap2.get_info().aaguid == Aaguid.NONE  # getInfo spans several packets


def test_unknown_and_broadcast_channels_are_refused(raw: VirtualHidConnection) -> None:
    raw.write_packet(frame_message(0x12345678, CTAPHID.PING, b"hi")[0])
    assert hid_error(raw) == (0x12345678, HidError.INVALID_CHANNEL)
    raw.write_packet(frame_message(BROADCAST_CID, CTAPHID.CBOR, b"\x04")[0])
    assert hid_error(raw) == (BROADCAST_CID, HidError.INVALID_CHANNEL)
    raw.write_packet(frame_message(0x12345678, CTAPHID.INIT, bytes(8))[0])
    assert hid_error(raw) == (0x12345678, HidError.INVALID_CHANNEL)


def test_bad_lengths_commands_and_report_sizes(raw: VirtualHidConnection) -> None:
    cid = init_channel(raw)
    raw.write_packet(frame_message(BROADCAST_CID, CTAPHID.INIT, bytes(7))[0])
    assert hid_error(raw) == (BROADCAST_CID, HidError.INVALID_LEN)
    raw.write_packet(
        struct.pack(">IBH", cid, 0x80 | CTAPHID.PING, MAX_MESSAGE_SIZE + 1).ljust(64, b"\0")
    )
    assert hid_error(raw) == (cid, HidError.INVALID_LEN)
    raw.write_packet(frame_message(cid, CTAPHID.CBOR, b"")[0])
    assert hid_error(raw) == (cid, HidError.INVALID_LEN)
    for command in (CTAPHID.MSG, CTAPHID.LOCK, 0x40):
        raw.write_packet(frame_message(cid, command, b"\x01")[0])
        assert hid_error(raw) == (cid, HidError.INVALID_CMD)
    with pytest.raises(OSError) as short:
        raw.write_packet(bytes(63))
    assert short.value.errno == errno.EINVAL


def test_wrong_sequence_and_interleaved_packets(raw: VirtualHidConnection) -> None:
    cid = init_channel(raw)
    other = init_channel(raw)
    packets = frame_message(cid, CTAPHID.PING, bytes(range(200)))
    raw.write_packet(packets[0])
    raw.write_packet(packets[2])  # seq 1 where seq 0 belongs
    assert hid_error(raw) == (cid, HidError.INVALID_SEQ)

    raw.write_packet(packets[0])
    raw.write_packet(frame_message(other, CTAPHID.PING, b"x")[0])
    assert hid_error(raw) == (other, HidError.CHANNEL_BUSY)
    raw.write_packet(frame_message(cid, CTAPHID.PING, b"y")[0])  # new init mid-message
    assert hid_error(raw) == (cid, HidError.INVALID_SEQ)

    raw.write_packet(packets[1])  # a spurious continuation is ignored
    for packet in packets:
        raw.write_packet(packet)
    reply = [raw.read_packet() for _ in packets]
    assert b"".join(p[7:] if i == 0 else p[5:] for i, p in enumerate(reply))[:200] == bytes(
        range(200)
    )


def test_channel_is_busy_while_a_command_waits_for_touch(core: RecordingCore) -> None:
    touch = threading.Event()
    with SoftwareSecurityKey(core, touch=touch) as key:
        raw = key.connect()
        cid, other = init_channel(raw), init_channel(raw)
        raw.write_packet(frame_message(cid, CTAPHID.CBOR, b"\x0b")[0])  # authenticatorSelection
        raw.write_packet(frame_message(other, CTAPHID.PING, b"x")[0])
        assert hid_error(raw) == (other, HidError.CHANNEL_BUSY)
        raw.write_packet(frame_message(cid, CTAPHID.PING, b"x")[0])
        assert hid_error(raw) == (cid, HidError.CHANNEL_BUSY)
        touch.set()
        assert read_reply(raw) == (cid, CTAPHID.CBOR, bytes([CtapStatus.SUCCESS]))
        raw.write_packet(frame_message(other, CTAPHID.PING, b"free")[0])
        assert read_reply(raw) == (other, CTAPHID.PING, b"free")


def test_reinit_keeps_the_channel_and_drops_its_command(core: RecordingCore) -> None:
    with SoftwareSecurityKey(core, touch=threading.Event()) as key:
        raw = key.connect()
        cid = init_channel(raw)
        raw.write_packet(frame_message(cid, CTAPHID.CBOR, b"\x0b")[0])
        nonce = os.urandom(8)
        raw.write_packet(frame_message(cid, CTAPHID.INIT, nonce)[0])
        reply_cid, cmd, payload = read_reply(raw)
        assert (reply_cid, cmd, payload[:8]) == (cid, CTAPHID.INIT, nonce)
        assert struct.unpack_from(">I", payload, 8)[0] == cid


def test_malformed_ctap_requests_get_ctap_statuses(ctap2: Ctap2) -> None:
    device = ctap2.device
    assert device.call(CTAPHID.CBOR, b"\x04\xa0") == bytes([CtapStatus.INVALID_LENGTH])
    assert device.call(CTAPHID.CBOR, b"\x01\xff") == bytes([CtapStatus.INVALID_CBOR])
    assert device.call(CTAPHID.CBOR, b"\x01\x80") == bytes([CtapStatus.CBOR_UNEXPECTED_TYPE])
    assert device.call(CTAPHID.CBOR, b"\x01") == bytes([CtapStatus.MISSING_PARAMETER])
    assert device.call(CTAPHID.CBOR, b"\x42") == bytes([CtapStatus.INVALID_COMMAND])
    assert device.call(CTAPHID.CBOR, b"\x08") == bytes([CtapStatus.NOT_ALLOWED])
    bad_rp = b"\x02" + cbor.encode({1: 5, 2: bytes(32)})
    assert device.call(CTAPHID.CBOR, bad_rp) == bytes([CtapStatus.CBOR_UNEXPECTED_TYPE])
    no_hash = b"\x02" + cbor.encode({1: "example.com"})
    assert device.call(CTAPHID.CBOR, no_hash) == bytes([CtapStatus.MISSING_PARAMETER])
