"""The bridge's CTAP2 responder against the software phone, driven by python-fido2's client.

`Fido2Client` talks to the responder through a `CtapDevice` adapter here; the CTAPHID and uhid
layers under it are tested on their own (and together in the VM).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from threading import Event
from typing import Any

import cbor2
import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap import CtapDevice
from fido2.ctap2.base import Info
from fido2.hid import CAPABILITY, CTAPHID
from fido2.server import Fido2Server
from fido2.webauthn import ResidentKeyRequirement

from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.bridge.request import BridgeRequest, CtapRequest
from hybrid.bridge.responder import PhoneResponder, bridge_get_info
from hybrid.ctap import CtapCommand, CtapStatus, decode_cbor_map
from hybrid.ctaphid import KeepaliveStatus
from hybrid.desktop import HybridClient
from hybrid.desktop.session import HybridSession
from tests.conftest import ORIGIN, USER
from tests.e2e.phones import verifying_phone
from tests.e2e.test_ceremonies import PhoneRunner

ClientFactory = Callable[..., HybridClient]
SessionContext = contextlib.AbstractAsyncContextManager[HybridSession]


class ResponderDevice(CtapDevice):
    """A `CtapDevice` whose CBOR commands go to a `PhoneResponder` on the event loop."""

    def __init__(self, responder: PhoneResponder, loop: asyncio.AbstractEventLoop) -> None:
        self.responder = responder
        self.loop = loop
        self.commands: list[int] = []

    @property
    def capabilities(self) -> int:
        return int(CAPABILITY.CBOR)

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: Event | None = None,
        on_keepalive: Callable[..., None] | None = None,
    ) -> bytes:
        assert cmd == CTAPHID.CBOR
        self.commands.append(data[0])
        future = asyncio.run_coroutine_threadsafe(self.responder.respond(data), self.loop)
        return future.result(timeout=60)  # status ‖ CBOR, as a key's CTAPHID_CBOR reply

    @classmethod
    def list_devices(cls) -> Any:
        return iter(())


def phone_sessions(client: HybridClient, phone: PhoneRunner) -> Any:
    def open_session(request: BridgeRequest) -> SessionContext:
        @contextlib.asynccontextmanager
        async def bounded() -> AsyncIterator[HybridSession]:
            async with asyncio.timeout(30), client.session(phone, request.kind) as session:
                yield session

        return bounded()

    return open_session


def test_get_info_is_parsed_by_python_fido2_and_claims_no_pin() -> None:
    info = Info.from_dict(decode_cbor_map(bridge_get_info()))
    assert info.versions == ["FIDO_2_0"]
    assert info.options == {"rk": True, "up": True, "uv": True, "plat": False}
    assert "clientPin" not in info.options and info.pin_uv_protocols == [2]
    assert info.transports == ["usb"]


def test_transports_are_stripped_and_other_requests_forwarded_untouched() -> None:
    allow = [{"type": "public-key", "id": b"\x01" * 16, "transports": ["usb"]}]
    body = cbor2.dumps({1: "example.com", 2: bytes(32), 3: allow}, canonical=True)
    stripped = CtapRequest.parse(bytes([CtapCommand.GET_ASSERTION]) + body).without_usb_transports()
    members = decode_cbor_map(stripped.raw[1:])
    assert members[3] == [{"type": "public-key", "id": b"\x01" * 16}]
    assert (members[1], members[2]) == ("example.com", bytes(32))

    plain = bytes([CtapCommand.GET_ASSERTION]) + cbor2.dumps({1: "example.com", 2: bytes(32)})
    assert CtapRequest.parse(plain).without_usb_transports().raw is plain


async def test_unknown_commands_and_garbage_are_ctap_errors_without_a_ceremony() -> None:
    def no_phone(request: BridgeRequest) -> Any:
        raise AssertionError("no ceremony may start")

    responder = PhoneResponder(no_phone)
    assert await responder.respond(b"") == bytes([CtapStatus.INVALID_LENGTH])
    assert await responder.respond(b"\x06\xa0") == bytes([CtapStatus.INVALID_COMMAND])
    garbage = bytes([CtapCommand.GET_ASSERTION]) + b"\xff\x00"
    assert await responder.respond(garbage) == bytes([CtapStatus.INVALID_CBOR])


@pytest.mark.parametrize("resident_key", [ResidentKeyRequirement.REQUIRED])
async def test_python_fido2_registers_and_signs_in_through_the_responder(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
    resident_key: ResidentKeyRequirement,
) -> None:
    phone = PhoneRunner(verifying_phone(), advertiser, tunnel_url)
    responder = PhoneResponder(phone_sessions(make_client(), phone))
    device = ResponderDevice(responder, asyncio.get_running_loop())
    # Fido2Client asks getInfo at once: not from the event loop the responder runs on
    client = await asyncio.to_thread(Fido2Client, device, DefaultClientDataCollector(ORIGIN))

    options, state = relying_party.register_begin(USER, resident_key_requirement=resident_key)
    registration = await asyncio.to_thread(client.make_credential, options.public_key)
    auth_data = relying_party.register_complete(state, registration)
    assert auth_data.credential_data is not None
    assert auth_data.is_user_verified()  # the phone verified the user, and said so

    request, state = relying_party.authenticate_begin()  # discoverable: no probe first
    selection = await asyncio.to_thread(client.get_assertion, request.public_key)
    relying_party.authenticate_complete(
        state, [auth_data.credential_data], selection.get_response(0)
    )
    assert len(phone.urls) == 2  # one QR code, one phone ceremony per WebAuthn call
    assert device.commands.count(CtapCommand.GET_INFO) >= 1
    assert responder.keepalive_status == KeepaliveStatus.PROCESSING


async def test_phone_never_found_is_a_timeout_reply_not_a_hang(make_client: ClientFactory) -> None:
    shown: list[str] = []
    client = make_client()

    def open_session(request: BridgeRequest) -> SessionContext:
        @contextlib.asynccontextmanager
        async def bounded() -> AsyncIterator[HybridSession]:
            async with asyncio.timeout(1), client.session(shown.append, request.kind) as session:
                yield session

        return bounded()

    responder = PhoneResponder(open_session)
    body = cbor2.dumps({1: "example.com", 2: bytes(32)}, canonical=True)
    reply = await responder.respond(bytes([CtapCommand.GET_ASSERTION]) + body)
    assert reply == bytes([CtapStatus.USER_ACTION_TIMEOUT])
    assert len(shown) == 1 and shown[0].startswith("FIDO:/")
    assert responder.keepalive_status == KeepaliveStatus.PROCESSING
