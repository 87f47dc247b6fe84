"""`CtapHidKey`, the CTAPHID device machine, driven with raw 64-byte reports: no threads, no
clock (every `now` is a number the test picks), every reply compared byte for byte."""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator

import pytest
from fido2.hid import CAPABILITY, CTAPHID

from hybrid.ctap import CtapStatus
from hybrid.ctaphid import (
    BROADCAST_CID,
    CAPABILITIES,
    MAX_MESSAGE_SIZE,
    REPORT_SIZE,
    CancelRequested,
    CborRequest,
    CtapHidKey,
    HidError,
    HidEvent,
    KeepaliveStatus,
    RequestAbandoned,
    Winked,
    frame_message,
)

NONCE = bytes(range(1, 9))
CID, OTHER = 0x01020304, 0x0A0B0C0D


def channel_ids(*ids: int) -> Callable[[], int]:
    """A `new_channel_id` that hands out `ids` in order."""
    source: Iterator[int] = iter(ids)
    return lambda: next(source)


def make_key(capabilities: int = CAPABILITIES, message_timeout: float = 0.5) -> CtapHidKey:
    """A key with two channels, CID and OTHER, allocated by broadcast INITs."""
    key = CtapHidKey(
        capabilities=capabilities,
        message_timeout=message_timeout,
        new_channel_id=channel_ids(CID, OTHER),
    )
    for _ in range(2):
        key.receive_report(frame_message(BROADCAST_CID, CTAPHID.INIT, NONCE)[0], 0.0)
    key.data_to_send()
    return key


def send(key: CtapHidKey, packets: list[bytes], now: float = 0.0) -> list[HidEvent]:
    return [event for packet in packets for event in key.receive_report(packet, now)]


def error(cid: int, code: HidError) -> list[bytes]:
    return frame_message(cid, CTAPHID.ERROR, bytes([code]))


def init_reply(cid: int, new_cid: int, version: bytes = b"\x00\x01\x00") -> list[bytes]:
    body = NONCE + struct.pack(">IB", new_cid, 2) + version + bytes([CAPABILITIES])
    return frame_message(cid, CTAPHID.INIT, body)


def header(cid: int, cmd: int, length: int) -> bytes:
    """An init packet that announces `length` bytes and carries none."""
    return struct.pack(">IBH", cid, 0x80 | cmd, length).ljust(REPORT_SIZE, b"\0")


@pytest.fixture
def key() -> CtapHidKey:
    return make_key()


# --- framing ----------------------------------------------------------------------------------


def test_frame_message_cuts_into_padded_reports() -> None:
    assert MAX_MESSAGE_SIZE == 7609
    assert frame_message(CID, CTAPHID.PING, b"") == [header(CID, CTAPHID.PING, 0)]
    packets = frame_message(CID, CTAPHID.PING, bytes(range(58)))
    assert packets[0] == struct.pack(">IBH", CID, 0x81, 58) + bytes(range(57))
    assert packets[1] == struct.pack(">IB", CID, 0) + b"\x39" + bytes(58)
    largest = frame_message(CID, CTAPHID.PING, bytes(MAX_MESSAGE_SIZE))
    assert len(largest) == 129 and largest[-1][4] == 127
    assert {len(packet) for packet in largest} == {REPORT_SIZE}
    with pytest.raises(ValueError):
        frame_message(CID, CTAPHID.PING, bytes(MAX_MESSAGE_SIZE + 1))


# --- INIT and channels ------------------------------------------------------------------------


def test_broadcast_init_allocates_fresh_channels() -> None:
    key = CtapHidKey(new_channel_id=channel_ids(0, BROADCAST_CID, 7, 7, 8))
    assert key.receive_report(frame_message(BROADCAST_CID, CTAPHID.INIT, NONCE)[0], 0.0) == []
    assert key.data_to_send() == init_reply(BROADCAST_CID, 7)
    key.receive_report(frame_message(BROADCAST_CID, CTAPHID.INIT, NONCE)[0], 0.0)
    assert key.data_to_send() == init_reply(BROADCAST_CID, 8)  # 0, broadcast, 7 again: skipped


def test_init_reports_capabilities_and_version() -> None:
    key = CtapHidKey(
        capabilities=CAPABILITY.CBOR, device_version=(1, 2, 3), new_channel_id=lambda: CID
    )
    send(key, frame_message(BROADCAST_CID, CTAPHID.INIT, NONCE))
    body = NONCE + struct.pack(">IB3BB", CID, 2, 1, 2, 3, CAPABILITY.CBOR)
    assert key.data_to_send() == frame_message(BROADCAST_CID, CTAPHID.INIT, body)
    with pytest.raises(ValueError):
        CtapHidKey(device_version=(256, 0, 0))


def test_a_generator_without_free_ids_gets_error_other() -> None:
    key = CtapHidKey(new_channel_id=lambda: 0)
    send(key, frame_message(BROADCAST_CID, CTAPHID.INIT, NONCE))
    assert key.data_to_send() == error(BROADCAST_CID, HidError.OTHER)


def test_init_on_unknown_channel_or_with_bad_nonce_length(key: CtapHidKey) -> None:
    send(key, frame_message(0x12345678, CTAPHID.INIT, NONCE))
    assert key.data_to_send() == error(0x12345678, HidError.INVALID_CHANNEL)
    send(key, frame_message(BROADCAST_CID, CTAPHID.INIT, NONCE[:7]))
    assert key.data_to_send() == error(BROADCAST_CID, HidError.INVALID_LEN)
    send(key, frame_message(CID, CTAPHID.INIT, NONCE + b"x"))
    assert key.data_to_send() == error(CID, HidError.INVALID_LEN)


def test_resync_init_keeps_the_channel_and_drops_its_half_message(key: CtapHidKey) -> None:
    ping = frame_message(CID, CTAPHID.PING, bytes(100))
    send(key, ping[:1])
    assert send(key, frame_message(CID, CTAPHID.INIT, NONCE)) == []
    assert key.data_to_send() == init_reply(CID, CID)
    send(key, ping[1:])  # now a spurious continuation
    assert key.data_to_send() == []


def test_commands_on_unknown_or_broadcast_channels(key: CtapHidKey) -> None:
    send(key, frame_message(0x12345678, CTAPHID.PING, b"hi"))
    assert key.data_to_send() == error(0x12345678, HidError.INVALID_CHANNEL)
    send(key, frame_message(BROADCAST_CID, CTAPHID.CBOR, b"\x04"))
    assert key.data_to_send() == error(BROADCAST_CID, HidError.INVALID_CHANNEL)
    send(key, frame_message(0x12345678, CTAPHID.CANCEL, b""))
    assert key.data_to_send() == error(0x12345678, HidError.INVALID_CHANNEL)


# --- messages the machine answers itself ------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 57, 58, 57 + 59, 57 + 59 + 1, MAX_MESSAGE_SIZE])
def test_ping_echoes(key: CtapHidKey, size: int) -> None:
    message = bytes(i % 251 for i in range(size))
    assert send(key, frame_message(CID, CTAPHID.PING, message)) == []
    assert key.data_to_send() == frame_message(CID, CTAPHID.PING, message)


def test_wink_is_answered_and_reported(key: CtapHidKey) -> None:
    assert send(key, frame_message(OTHER, CTAPHID.WINK, b"")) == [Winked(OTHER)]
    assert key.data_to_send() == frame_message(OTHER, CTAPHID.WINK, b"")


def test_commands_without_the_capability_are_invalid() -> None:
    key = make_key(capabilities=CAPABILITY.NMSG)
    for command in (CTAPHID.WINK, CTAPHID.CBOR):
        assert send(key, frame_message(CID, command, b"\x04")) == []
        assert key.data_to_send() == error(CID, HidError.INVALID_CMD)


@pytest.mark.parametrize("command", [CTAPHID.MSG, CTAPHID.LOCK, 0x40, CTAPHID.KEEPALIVE])
def test_unsupported_commands(key: CtapHidKey, command: int) -> None:
    send(key, frame_message(CID, command, b"\x01"))
    assert key.data_to_send() == error(CID, HidError.INVALID_CMD)


def test_message_lengths(key: CtapHidKey) -> None:
    send(key, [header(CID, CTAPHID.PING, MAX_MESSAGE_SIZE + 1)])
    assert key.data_to_send() == error(CID, HidError.INVALID_LEN)
    send(key, [header(CID, CTAPHID.PING, 0xFFFF)])
    assert key.data_to_send() == error(CID, HidError.INVALID_LEN)
    send(key, frame_message(CID, CTAPHID.CBOR, b""))
    assert key.data_to_send() == error(CID, HidError.INVALID_LEN)
    assert key.running is None


# --- assembling a message ---------------------------------------------------------------------


def test_wrong_sequence_drops_the_message(key: CtapHidKey) -> None:
    packets = frame_message(CID, CTAPHID.PING, bytes(200))
    send(key, [packets[0], packets[2]])
    assert key.data_to_send() == error(CID, HidError.INVALID_SEQ)
    send(key, packets[1:])  # the message is gone: these are spurious
    assert key.data_to_send() == []


def test_other_channels_wait_while_a_message_arrives(key: CtapHidKey) -> None:
    packets = frame_message(CID, CTAPHID.PING, bytes(range(200)))
    send(key, packets[:2])
    send(key, frame_message(OTHER, CTAPHID.PING, b"x"))
    assert key.data_to_send() == error(OTHER, HidError.CHANNEL_BUSY)
    send(key, [struct.pack(">IB", OTHER, 1).ljust(REPORT_SIZE, b"\0")])
    assert key.data_to_send() == error(OTHER, HidError.CHANNEL_BUSY)
    send(key, packets[2:])  # neither disturbed the message
    assert key.data_to_send() == frame_message(CID, CTAPHID.PING, bytes(range(200)))


def test_a_new_message_where_a_continuation_was_due(key: CtapHidKey) -> None:
    send(key, frame_message(CID, CTAPHID.PING, bytes(100))[:1])
    send(key, frame_message(CID, CTAPHID.PING, b"y"))
    assert key.data_to_send() == error(CID, HidError.INVALID_SEQ)
    send(key, frame_message(CID, CTAPHID.PING, b"z"))
    assert key.data_to_send() == frame_message(CID, CTAPHID.PING, b"z")


def test_spurious_continuations_are_ignored(key: CtapHidKey) -> None:
    send(key, [struct.pack(">IB", CID, 0).ljust(REPORT_SIZE, b"\xff")])
    send(key, [struct.pack(">IB", 0x12345678, 5).ljust(REPORT_SIZE, b"\0")])
    assert key.data_to_send() == []


def test_a_half_sent_message_times_out(key: CtapHidKey) -> None:
    packets = frame_message(CID, CTAPHID.PING, bytes(100))
    send(key, packets[:1], now=10.0)
    key.expire(10.5)  # exactly message_timeout old: still waiting
    assert key.data_to_send() == []
    send(key, frame_message(OTHER, CTAPHID.PING, b"next"), now=10.6)
    timeout = error(CID, HidError.MSG_TIMEOUT)
    assert key.data_to_send() == timeout + frame_message(OTHER, CTAPHID.PING, b"next")
    send(key, packets[1:], now=10.7)  # too late: spurious now
    assert key.data_to_send() == []


def test_expire_alone_and_a_custom_timeout() -> None:
    key = make_key(message_timeout=2.0)
    send(key, frame_message(CID, CTAPHID.CBOR, bytes(100))[:1], now=1.0)
    key.expire(2.9)
    assert key.data_to_send() == []
    key.expire(3.1)
    assert key.data_to_send() == error(CID, HidError.MSG_TIMEOUT)
    key.expire(9.0)
    assert key.data_to_send() == [] and key.running is None


# --- one CBOR request at a time ---------------------------------------------------------------


def test_cbor_request_runs_until_answered(key: CtapHidKey) -> None:
    request = b"\x01" + bytes(range(100))
    assert send(key, frame_message(CID, CTAPHID.CBOR, request)) == [CborRequest(CID, request)]
    assert key.running == CID and key.data_to_send() == []
    key.keepalive(KeepaliveStatus.UP_NEEDED)
    key.keepalive(KeepaliveStatus.PROCESSING)
    assert key.data_to_send() == (
        frame_message(CID, CTAPHID.KEEPALIVE, b"\x02")
        + frame_message(CID, CTAPHID.KEEPALIVE, b"\x01")
    )
    key.answer(CID, b"\x00" + bytes(200))
    assert key.data_to_send() == frame_message(CID, CTAPHID.CBOR, b"\x00" + bytes(200))
    assert key.running is None
    key.keepalive(KeepaliveStatus.PROCESSING)  # idle: nothing to keep alive
    assert key.data_to_send() == []


def test_everything_else_is_busy_while_a_request_runs(key: CtapHidKey) -> None:
    send(key, frame_message(CID, CTAPHID.CBOR, b"\x0b"))
    send(key, frame_message(OTHER, CTAPHID.CBOR, b"\x04"))
    send(key, frame_message(OTHER, CTAPHID.PING, b"x"))
    send(key, frame_message(CID, CTAPHID.PING, b"x"))
    busy = error(OTHER, HidError.CHANNEL_BUSY) * 2 + error(CID, HidError.CHANNEL_BUSY)
    assert key.data_to_send() == busy
    key.answer(CID, b"\x00")
    assert key.data_to_send() == frame_message(CID, CTAPHID.CBOR, b"\x00")
    send(key, frame_message(OTHER, CTAPHID.PING, b"free"))
    assert key.data_to_send() == frame_message(OTHER, CTAPHID.PING, b"free")


def test_a_new_channel_can_be_opened_while_a_request_runs() -> None:
    key = CtapHidKey(new_channel_id=channel_ids(CID, OTHER))
    send(key, frame_message(BROADCAST_CID, CTAPHID.INIT, NONCE))
    send(key, frame_message(CID, CTAPHID.CBOR, b"\x0b"))
    key.data_to_send()
    send(key, frame_message(BROADCAST_CID, CTAPHID.INIT, NONCE))
    assert key.data_to_send() == init_reply(BROADCAST_CID, OTHER)
    assert key.running == CID


def test_cancel_on_the_running_channel_only(key: CtapHidKey) -> None:
    cancel = frame_message(CID, CTAPHID.CANCEL, b"")
    assert send(key, cancel) == []  # nothing runs
    send(key, frame_message(CID, CTAPHID.CBOR, b"\x0b"))
    assert send(key, frame_message(OTHER, CTAPHID.CANCEL, b"")) == []
    assert send(key, cancel) == [CancelRequested(CID)]
    assert key.data_to_send() == []  # CANCEL itself is never answered
    key.answer(CID, bytes([CtapStatus.KEEPALIVE_CANCEL]))
    assert key.data_to_send() == frame_message(CID, CTAPHID.CBOR, b"\x2d")


def test_reinit_abandons_the_running_request(key: CtapHidKey) -> None:
    send(key, frame_message(CID, CTAPHID.CBOR, b"\x0b"))
    assert send(key, frame_message(CID, CTAPHID.INIT, NONCE)) == [RequestAbandoned(CID)]
    assert key.data_to_send() == init_reply(CID, CID)
    assert send(key, frame_message(CID, CTAPHID.INIT, NONCE)) == []  # abandoned once
    assert send(key, frame_message(CID, CTAPHID.CANCEL, b"")) == []
    key.keepalive(KeepaliveStatus.PROCESSING)  # its host has moved on
    assert key.data_to_send() == init_reply(CID, CID)
    assert key.running == CID  # busy until the work has stopped
    send(key, frame_message(CID, CTAPHID.CBOR, b"\x04"))
    assert key.data_to_send() == error(CID, HidError.CHANNEL_BUSY)
    key.answer(CID, b"\x00")
    assert key.data_to_send() == [] and key.running is None
    assert send(key, frame_message(CID, CTAPHID.CBOR, b"\x04")) == [CborRequest(CID, b"\x04")]


def test_reinit_of_another_channel_leaves_the_request_alone(key: CtapHidKey) -> None:
    send(key, frame_message(CID, CTAPHID.CBOR, b"\x0b"))
    assert send(key, frame_message(OTHER, CTAPHID.INIT, NONCE)) == []
    key.answer(CID, b"\x00")
    assert key.data_to_send() == init_reply(OTHER, OTHER) + frame_message(
        CID, CTAPHID.CBOR, b"\x00"
    )


def test_answers_nobody_waits_for_are_dropped(key: CtapHidKey) -> None:
    key.answer(CID, b"\x00")
    send(key, frame_message(CID, CTAPHID.CBOR, b"\x0b"))
    key.answer(OTHER, b"\x00")
    assert key.data_to_send() == [] and key.running == CID


@pytest.mark.parametrize(
    ("size", "sent"),
    [
        (MAX_MESSAGE_SIZE, bytes(MAX_MESSAGE_SIZE)),
        (MAX_MESSAGE_SIZE + 1, bytes([CtapStatus.REQUEST_TOO_LARGE])),
    ],
)
def test_replies_too_long_for_ctaphid(key: CtapHidKey, size: int, sent: bytes) -> None:
    send(key, frame_message(CID, CTAPHID.CBOR, b"\x04"))
    key.answer(CID, bytes(size))
    assert key.data_to_send() == frame_message(CID, CTAPHID.CBOR, sent)


def test_reset_forgets_everything(key: CtapHidKey) -> None:
    send(key, frame_message(CID, CTAPHID.CBOR, b"\x0b"))
    send(key, frame_message(OTHER, CTAPHID.PING, b"x"))
    key.reset()
    assert key.running is None and key.data_to_send() == []
    key.answer(CID, b"\x00")
    send(key, frame_message(CID, CTAPHID.PING, b"x"))
    assert key.data_to_send() == error(CID, HidError.INVALID_CHANNEL)


# --- reports that are not CTAPHID -------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4, 63, 65, 128])
def test_reports_of_other_lengths_are_logged_and_ignored(
    key: CtapHidKey, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    report = frame_message(CID, CTAPHID.PING, b"x")[0].ljust(size, b"\0")[:size]
    with caplog.at_level(logging.WARNING, logger="hybrid.ctaphid.key"):
        assert key.receive_report(report, 0.0) == []
    assert key.data_to_send() == []
    assert f"{size}-byte output report" in caplog.text


def test_a_slow_but_steady_sender_is_not_cut_off() -> None:
    """The timeout runs from the last packet: a loaded host writing a long message packet by
    packet, each in time, gets its message through however long the whole takes."""
    key = make_key(message_timeout=0.5)
    request = b"\x01" + bytes(range(200))
    packets = frame_message(CID, CTAPHID.CBOR, request)
    assert len(packets) > 3
    events = []
    for index, packet in enumerate(packets):
        events += send(key, [packet], now=10.0 + 0.4 * index)
    assert events == [CborRequest(CID, request)]
    assert key.data_to_send() == []
