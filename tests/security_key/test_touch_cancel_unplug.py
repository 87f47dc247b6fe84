"""Waiting for a touch (KEEPALIVE), cancelling, and pulling the key out, seen by python-fido2."""

from __future__ import annotations

import errno
import threading
from typing import Any

import pytest
from fido2.ctap import STATUS, CtapError
from fido2.ctap2.base import Ctap2
from fido2.hid import CTAPHID

from hybrid.authenticator.security_key import SoftwareSecurityKey
from hybrid.authenticator.security_key_hid import frame_message
from hybrid.ctap import CtapStatus
from tests.security_key.conftest import RecordingCore
from tests.security_key.raw_hid import init_channel, read_reply

CDH = b"\x42" * 32


def make_credential(ctap2: Ctap2, **extra: Any) -> Any:
    return ctap2.make_credential(
        CDH,
        {"id": "example.com"},
        {"id": b"user", "name": "user"},
        [{"type": "public-key", "alg": -7}],
        **extra,
    )


def test_keepalives_say_upneeded_until_the_touch(core: RecordingCore) -> None:
    touch = threading.Event()
    with SoftwareSecurityKey(core, touch=touch) as key:
        raw = key.connect()
        cid = init_channel(raw)
        raw.write_packet(frame_message(cid, CTAPHID.CBOR, b"\x0b")[0])
        keepalives = [raw.read_packet() for _ in range(3)]
        touch.set()
        assert read_reply(raw) == (cid, CTAPHID.CBOR, bytes([CtapStatus.SUCCESS]))
    expected = frame_message(cid, CTAPHID.KEEPALIVE, bytes([STATUS.UPNEEDED]))[0]
    assert keepalives[-1] == expected
    assert all(packet[:7] == expected[:7] for packet in keepalives)
    assert not touch.is_set()  # the touch was consumed by this one operation


def test_python_fido2_sees_upneeded_and_gets_the_credential(core: RecordingCore) -> None:
    touch = threading.Event()
    seen: list[STATUS] = []

    def on_keepalive(status: STATUS) -> None:
        seen.append(status)
        if status == STATUS.UPNEEDED:
            touch.set()  # the user touches once the key asks

    with SoftwareSecurityKey(core, touch=touch) as key:
        device = key.open_device()
        attestation = make_credential(Ctap2(device), on_keepalive=on_keepalive)
    assert seen[-1] == STATUS.UPNEEDED
    assert attestation.auth_data.is_user_present()
    assert len(core.store) == 1


def test_cancel_event_stops_the_touch_wait_with_keepalive_cancel(
    core: RecordingCore, threads_before: int
) -> None:
    touch, cancel = threading.Event(), threading.Event()

    def on_keepalive(status: STATUS) -> None:
        if status == STATUS.UPNEEDED:
            cancel.set()  # python-fido2 then sends CTAPHID_CANCEL

    with SoftwareSecurityKey(core, touch=touch) as key:
        ctap2 = Ctap2(key.open_device())
        with pytest.raises(CtapError) as cancelled:
            make_credential(ctap2, event=cancel, on_keepalive=on_keepalive)
        assert cancelled.value.code == CtapStatus.KEEPALIVE_CANCEL
        assert len(core.store) == 0
        touch.set()
        assert make_credential(ctap2).auth_data.is_user_present()  # the channel still works
    assert threading.active_count() == threads_before


def test_declined_and_unanswered_touches(core: RecordingCore) -> None:
    with SoftwareSecurityKey(core, touch=lambda: False) as key:
        with pytest.raises(CtapError) as declined:
            make_credential(Ctap2(key.open_device()))
        assert declined.value.code == CtapStatus.OPERATION_DENIED
    with SoftwareSecurityKey(core, touch=threading.Event(), touch_timeout=0.2) as key:
        with pytest.raises(CtapError) as timeout:
            Ctap2(key.open_device()).selection()
        assert timeout.value.code == CtapStatus.USER_ACTION_TIMEOUT
    assert len(core.store) == 0


def test_unplug_mid_command_raises_oserror_and_leaves_no_thread(
    core: RecordingCore, threads_before: int
) -> None:
    key = SoftwareSecurityKey(core, touch=threading.Event())
    ctap2 = Ctap2(key.open_device())
    waiting = threading.Event()
    outcome: list[BaseException] = []

    def host() -> None:
        try:
            make_credential(ctap2, on_keepalive=lambda status: waiting.set())
        except BaseException as exc:
            outcome.append(exc)

    host_thread = threading.Thread(target=host)
    host_thread.start()
    assert waiting.wait(10)
    key.unplug()
    host_thread.join(10)
    assert not host_thread.is_alive()
    assert [type(exc) for exc in outcome] == [OSError]
    assert isinstance(outcome[0], OSError) and outcome[0].errno == errno.ENODEV
    assert len(core.store) == 0
    with pytest.raises(OSError) as later:
        ctap2.get_info()
    assert later.value.errno == errno.ENODEV
    with pytest.raises(OSError) as reopen:
        key.open_device()
    assert reopen.value.errno == errno.ENODEV
    assert threading.active_count() == threads_before


def test_unplug_from_the_keepalive_callback(core: RecordingCore, threads_before: int) -> None:
    key = SoftwareSecurityKey(core, touch=threading.Event())
    ctap2 = Ctap2(key.open_device())
    with pytest.raises(OSError) as gone:
        make_credential(ctap2, on_keepalive=lambda status: key.unplug())
    assert gone.value.errno == errno.ENODEV
    assert threading.active_count() == threads_before


def test_closed_connection_fails_like_a_closed_file(key: SoftwareSecurityKey) -> None:
    device = key.open_device()
    device.close()
    with pytest.raises(OSError) as closed:
        device.ping()
    assert closed.value.errno == errno.EBADF
    assert key.open_device().ping(b"still here") == b"still here"
