"""The bridge as a real kernel HID device: python-fido2's unmodified Linux backend finds it
under /dev/hidraw and registers and signs in through it (run inside the VM)."""

from __future__ import annotations

import asyncio
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cbor2
import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.hid import CAPABILITY, CTAPHID, CtapHidDevice
from fido2.server import Fido2Server
from fido2.webauthn import AttestedCredentialData, ResidentKeyRequirement

from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.bridge.daemon import PRODUCT_NAME
from hybrid.ctaphid import BROADCAST_CID, HidError, frame_message
from tests.conftest import ORIGIN, USER, ClientFactory
from tests.uhid.conftest import RunningBridge, bridge_on_uhid


@contextmanager
def bridge_device() -> Iterator[CtapHidDevice]:
    """The bridge as python-fido2's own HID discovery lists it (sysfs, report descriptor)."""
    found = [d for d in CtapHidDevice.list_devices() if d.product_name == PRODUCT_NAME]
    assert len(found) == 1, [d.descriptor for d in CtapHidDevice.list_devices()]
    device = found[0]
    try:
        yield device
    finally:
        device.close()


class CancelOnTouch(UserInteraction):
    """The user closes the browser's dialog as soon as it asks for the key."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel
        self.prompts = 0

    def prompt_up(self) -> None:
        self.prompts += 1
        self.cancel.set()


def _register(client: Fido2Client, rp: Fido2Server, **kwargs: object) -> AttestedCredentialData:
    options, state = rp.register_begin(USER, **kwargs)  # type: ignore[arg-type]
    auth_data = rp.register_complete(state, client.make_credential(options.public_key))
    assert auth_data.credential_data is not None and auth_data.is_user_verified()
    return auth_data.credential_data


def _sign_in(
    client: Fido2Client, rp: Fido2Server, credentials: list[AttestedCredentialData], allow: bool
) -> None:
    request, state = rp.authenticate_begin(credentials if allow else None)
    selection = client.get_assertion(request.public_key)
    rp.authenticate_complete(state, credentials, selection.get_response(0))


async def test_python_fido2_registers_and_signs_in_over_hidraw(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    async with bridge_on_uhid(make_client, advertiser, tunnel_url) as running:
        assert running.hidraw.startswith("/dev/hidraw") and os.path.exists(running.hidraw)

        def ceremonies() -> None:
            with bridge_device() as device:
                assert device.capabilities & CAPABILITY.CBOR
                client = Fido2Client(device, DefaultClientDataCollector(ORIGIN))
                discoverable = _register(
                    client, relying_party, resident_key_requirement=ResidentKeyRequirement.REQUIRED
                )
                _sign_in(client, relying_party, [discoverable], allow=True)
                _sign_in(client, relying_party, [discoverable], allow=False)
                with pytest.raises(ClientError) as excluded:
                    _register(client, relying_party, credentials=[discoverable])
                assert excluded.value.code == ClientError.ERR.DEVICE_INELIGIBLE

        await asyncio.to_thread(ceremonies)
        assert len(running.phone.urls) == 4  # one QR code per WebAuthn call, probes included
        assert [r.kind for r in running.presenter.requests] == ["mc", "ga", "ga", "mc"]
    assert not os.path.exists(running.hidraw)  # unplugged when the bridge stopped


async def test_cancel_and_phone_never_found_over_hidraw(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    async with bridge_on_uhid(make_client, advertiser, tunnel_url, answer=False) as running:
        options, _ = relying_party.register_begin(USER)

        def cancelled_and_timed_out() -> tuple[int, ClientError]:
            with bridge_device() as device:
                cancel = threading.Event()
                asked = CancelOnTouch(cancel)
                client = Fido2Client(device, DefaultClientDataCollector(ORIGIN), asked)
                with pytest.raises(ClientError) as first:
                    client.make_credential(options.public_key, event=cancel)
                assert isinstance(first.value.cause, CtapError)
                assert first.value.cause.code == CtapError.ERR.KEEPALIVE_CANCEL
                # the phone never comes: the bridge's own time limit ends the ceremony
                running.bridge.ceremony_timeout = 3.0
                with pytest.raises(ClientError) as second:
                    client.make_credential(options.public_key)
                return asked.prompts, second.value

        prompts, timed_out = await asyncio.to_thread(cancelled_and_timed_out)
        assert prompts >= 1  # a KEEPALIVE with UP_NEEDED came while the QR code was up
        assert timed_out.code == ClientError.ERR.TIMEOUT
        assert running.presenter.outcomes[0] == "Cancelled."
        assert running.presenter.outcomes[1].startswith("Failed: ")


def _raw(running: RunningBridge, packets: list[bytes]) -> list[bytes]:
    """Write packets to the hidraw node as a program would; read replies until INIT's."""
    fd = os.open(running.hidraw, os.O_RDWR)
    try:
        for packet in packets:
            os.write(fd, b"\0" + packet)
        nonce = b"12345678"
        os.write(fd, b"\0" + frame_message(BROADCAST_CID, CTAPHID.INIT, nonce)[0])
        replies = []
        while True:
            reply = os.read(fd, 64)
            replies.append(reply)
            if reply[4] == 0x80 | CTAPHID.INIT and reply[7:15] == nonce:
                return replies
    finally:
        os.close(fd)


async def test_malformed_reports_get_ctaphid_errors_and_the_device_stays_up(
    make_client: ClientFactory, advertiser: BumbleAdvertiser, tunnel_url: str
) -> None:
    async with bridge_on_uhid(make_client, advertiser, tunnel_url) as running:
        oversized = struct.pack(">IBH", 0x01020304, 0x80 | CTAPHID.CBOR, 8000).ljust(64, b"\0")
        replies = await asyncio.to_thread(
            _raw,
            running,
            [oversized, b"\xff" * 64, bytes(64), b"\x01\x02\x03\x04\x05" + bytes(59)],
        )
        errors = [r[7] for r in replies if r[4] == 0x80 | CTAPHID.ERROR]
        assert HidError.INVALID_CHANNEL in errors
        # and python-fido2 still talks to it
        info = await asyncio.to_thread(_get_info)
        assert info[0] == 0


def _get_info() -> bytes:
    with bridge_device() as device:
        return device.call(CTAPHID.CBOR, b"\x04")


def _open_channel(fd: int, nonce: bytes) -> int:
    """CTAPHID_INIT on the broadcast channel; the new channel's ID (skipping others' reports)."""
    os.write(fd, b"\0" + frame_message(BROADCAST_CID, CTAPHID.INIT, nonce)[0])
    while True:
        reply = os.read(fd, 64)
        if reply[4] == 0x80 | CTAPHID.INIT and reply[7:15] == nonce:
            return int.from_bytes(reply[15:19], "big")


def _send_cbor(fd: int, cid: int, request: bytes) -> None:
    for packet in frame_message(cid, CTAPHID.CBOR, request):
        os.write(fd, b"\0" + packet)


def _read_until(fd: int, cid: int, command: int) -> bytes:
    while True:
        reply = os.read(fd, 64)
        if int.from_bytes(reply[:4], "big") == cid and reply[4] == 0x80 | command:
            return reply


async def test_a_second_program_gets_channel_busy_while_the_phone_works(
    make_client: ClientFactory, advertiser: BumbleAdvertiser, tunnel_url: str
) -> None:
    async with bridge_on_uhid(make_client, advertiser, tunnel_url, answer=False) as running:

        def two_programs() -> bytes:
            first, second = os.open(running.hidraw, os.O_RDWR), os.open(running.hidraw, os.O_RDWR)
            try:
                one = _open_channel(first, b"program1")
                _send_cbor(first, one, b"\x02" + _get_assertion_body())
                _read_until(first, one, CTAPHID.KEEPALIVE)  # the first one's ceremony runs
                two = _open_channel(second, b"program2")
                _send_cbor(second, two, b"\x04")
                return _read_until(second, two, CTAPHID.ERROR)
            finally:
                os.close(first)
                os.close(second)

        busy = await asyncio.to_thread(two_programs)
        assert busy[7] == HidError.CHANNEL_BUSY
        await running.presenter.ended.wait()  # closing the first one cancelled its ceremony
        assert len(running.presenter.requests) == 1


async def test_a_program_vanishing_mid_request_cancels_the_ceremony(
    make_client: ClientFactory, advertiser: BumbleAdvertiser, tunnel_url: str
) -> None:
    async with bridge_on_uhid(make_client, advertiser, tunnel_url, answer=False) as running:

        def ask_and_vanish() -> None:
            fd = os.open(running.hidraw, os.O_RDWR)
            try:
                cid = _open_channel(fd, b"abcdefgh")
                _send_cbor(fd, cid, b"\x02" + _get_assertion_body())
                _read_until(fd, cid, CTAPHID.KEEPALIVE)  # the ceremony runs: the key says so
            finally:
                os.close(fd)  # the program is gone (crashed, closed its tab)

        await asyncio.to_thread(ask_and_vanish)
        await running.presenter.ended.wait()
        assert running.presenter.outcomes == ["Cancelled."]
        info = await asyncio.to_thread(_get_info)  # the key is free for the next program
        assert info[0] == 0


def _get_assertion_body() -> bytes:
    return cbor2.dumps({1: "example.com", 2: bytes(range(32))})
