"""VirtualCtapHid with handlers other than the key: PROCESSING keepalives, a crashing or
oversized handler, and a sender that goes quiet mid-message."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from fido2.ctap import STATUS
from fido2.hid import CTAPHID, CtapHidDevice

from hybrid.authenticator.security_key_hid import (
    MAX_MESSAGE_SIZE,
    HidCommand,
    HidError,
    VirtualCtapHid,
    frame_message,
    hid_descriptor,
)
from hybrid.ctap import CtapStatus
from tests.security_key.raw_hid import hid_error, init_channel, read_reply


class FunctionHandler:
    def __init__(self, answer: Callable[[bytes, HidCommand], bytes]) -> None:
        self.answer = answer

    def handle_cbor(self, request: bytes, command: HidCommand) -> bytes:
        return self.answer(request, command)


@pytest.fixture
def make_hid() -> Iterator[Callable[..., VirtualCtapHid]]:
    made: list[VirtualCtapHid] = []

    def make(answer: Callable[[bytes, HidCommand], bytes], **kwargs: float) -> VirtualCtapHid:
        made.append(VirtualCtapHid(FunctionHandler(answer), **kwargs))
        return made[-1]

    yield make
    for hid in made:
        hid.close()


def test_slow_handler_gets_processing_keepalives(make_hid: Callable[..., VirtualCtapHid]) -> None:
    release = threading.Event()

    def slow(request: bytes, command: HidCommand) -> bytes:
        release.wait(10)
        return b"\x00" + request

    hid = make_hid(slow)
    raw = hid.open()
    cid = init_channel(raw)
    raw.write_packet(frame_message(cid, CTAPHID.CBOR, b"\x01")[0])
    keepalive = raw.read_packet()
    release.set()
    assert keepalive == frame_message(cid, CTAPHID.KEEPALIVE, bytes([STATUS.PROCESSING]))[0]
    assert read_reply(raw) == (cid, CTAPHID.CBOR, b"\x00\x01")


def test_crashing_and_oversized_handlers_still_answer(
    make_hid: Callable[..., VirtualCtapHid],
) -> None:
    def crash(request: bytes, command: HidCommand) -> bytes:
        raise RuntimeError("bug in the handler")

    device = CtapHidDevice(hid_descriptor(), make_hid(crash).open())
    assert device.call(CTAPHID.CBOR, b"\x04") == bytes([CtapStatus.OTHER])

    huge = make_hid(lambda request, command: bytes(MAX_MESSAGE_SIZE + 1))
    device = CtapHidDevice(hid_descriptor(), huge.open())
    assert device.call(CTAPHID.CBOR, b"\x04") == bytes([CtapStatus.REQUEST_TOO_LARGE])
    largest = make_hid(lambda request, command: bytes(MAX_MESSAGE_SIZE))
    device = CtapHidDevice(hid_descriptor(), largest.open())
    assert device.call(CTAPHID.CBOR, b"\x04") == bytes(MAX_MESSAGE_SIZE)


def test_a_half_sent_message_times_out_and_frees_the_key(
    make_hid: Callable[..., VirtualCtapHid],
) -> None:
    hid = make_hid(lambda request, command: b"\x00", message_timeout=0.05)
    raw = hid.open()
    quiet, other = init_channel(raw), init_channel(raw)
    raw.write_packet(frame_message(quiet, CTAPHID.PING, bytes(100))[0])  # never continued
    time.sleep(0.1)
    raw.write_packet(frame_message(other, CTAPHID.PING, b"next")[0])
    assert hid_error(raw) == (quiet, HidError.MSG_TIMEOUT)
    assert read_reply(raw) == (other, CTAPHID.PING, b"next")
