"""Our roles against hand-built peers: a garbage-sending desktop, a v2.0 phone, fido2's Ctap2."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest
from fido2.ctap2.base import Ctap2
from fido2.server import Fido2Server
from fido2.webauthn import ResidentKeyRequirement

from hybrid.authenticator import SoftwareAuthenticator, answer_qr
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.ble.scanner import CableScanner
from hybrid.client import HybridClient
from hybrid.errors import CeremonyTimeout, HybridError, ProtocolError
from hybrid.protocol import (
    Eid,
    KeyPurpose,
    PostHandshakeMessage,
    QRCode,
    decrypt_advert,
    derive,
    encrypt_advert,
    respond_to_handshake,
)
from hybrid.tunnel import Tunnel
from hybrid.webauthn import finish_make_credential, prepare_make_credential
from tests.e2e.conftest import ORIGIN, USER
from tunnel_server import ServerConfig, TunnelServer

ClientFactory = Callable[..., HybridClient]


class RecordingAdvertiser:
    """Wraps a real advertiser and records the calls `answer_qr` makes."""

    def __init__(self, inner: BumbleAdvertiser) -> None:
        self.inner = inner
        self.calls: list[str] = []

    async def advertise(self, service_data: bytes) -> None:
        self.calls.append("advertise")
        await self.inner.advertise(service_data)

    async def stop(self) -> None:
        self.calls.append("stop")
        await self.inner.stop()


async def _find_phone(radio: VirtualRadio, qr: QRCode) -> Eid:
    eid_key = derive(qr.secret, b"", KeyPurpose.EID_KEY, 64)
    async with CableScanner(BumbleScannerBackend, {"radio": radio}) as scanner:
        async for advert in scanner.adverts():
            eid = decrypt_advert(eid_key, advert.service_data)
            if eid is not None:
                return eid
    raise AssertionError("scanner stopped")


async def test_phone_gives_up_when_no_desktop_connects(advertiser: BumbleAdvertiser) -> None:
    recorder = RecordingAdvertiser(advertiser)
    async with TunnelServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        qr, _ = QRCode.generate()
        with pytest.raises(CeremonyTimeout, match="did not finish"):
            await answer_qr(qr.to_url(), SoftwareAuthenticator(), recorder, server.url, timeout=0.5)
        assert recorder.calls == ["advertise", "stop"]
        await asyncio.sleep(0.1)
        assert server.active_tunnels() == 0  # the phone's tunnel is gone too


async def test_desktop_sending_garbage_gets_a_clean_close(
    radio: VirtualRadio, advertiser: BumbleAdvertiser
) -> None:
    recorder = RecordingAdvertiser(advertiser)
    async with TunnelServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        qr, _ = QRCode.generate()
        phone = asyncio.create_task(
            answer_qr(qr.to_url(), SoftwareAuthenticator(), recorder, server.url, timeout=10)
        )
        eid = await _find_phone(radio, qr)
        tunnel_id = derive(qr.secret, b"", KeyPurpose.TUNNEL_ID, 16)
        desktop = await Tunnel.open_connect(server.url, eid.routing_id, tunnel_id)
        await desktop.send(os.urandom(81))  # not a handshake message
        with pytest.raises(ProtocolError):
            await asyncio.wait_for(phone, 10)
        assert recorder.calls == ["advertise", "stop"]
        with pytest.raises(HybridError):
            await asyncio.wait_for(desktop.recv(), 5)  # the phone closed the tunnel
        await desktop.close()
        await asyncio.sleep(0.1)
        assert server.active_tunnels() == 0


async def test_desktop_accepts_a_revision_0_phone(
    make_client: ClientFactory,
    radio: VirtualRadio,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    """A v2.0 phone: padded post-handshake map, then an untyped CTAP reply, no shutdown."""
    authenticator = SoftwareAuthenticator()
    seen: list[bytes] = []

    async def old_phone(url: str) -> None:
        qr = QRCode.from_url(url)
        tunnel = await Tunnel.open_new(tunnel_url, derive(qr.secret, b"", 2, 16))
        assert tunnel.routing_id is not None
        eid = Eid(os.urandom(10), tunnel.routing_id, 0)
        await advertiser.advertise(encrypt_advert(derive(qr.secret, b"", 1, 64), eid))
        message = await tunnel.recv()
        await advertiser.stop()
        psk = derive(qr.secret, eid.to_bytes(), KeyPurpose.PSK, 32)
        response, crypter, _ = respond_to_handshake(psk, message, peer_identity=qr.public_point)
        await tunnel.send(response)
        post = PostHandshakeMessage(get_info=authenticator.get_info_cbor(), revision=0)
        await tunnel.send(crypter.encrypt(post.encode()))
        request = crypter.decrypt(await tunnel.recv())
        seen.append(request)
        await tunnel.send(crypter.encrypt(await authenticator.handle_ctap(request)))
        await tunnel.close()

    tasks: list[asyncio.Task[None]] = []
    options, state = relying_party.register_begin(
        USER, resident_key_requirement=ResidentKeyRequirement.REQUIRED
    )
    credential = await make_client().make_credential(
        dict(options["publicKey"]), lambda url: tasks.append(asyncio.create_task(old_phone(url)))
    )
    await tasks[0]
    assert seen[0][0] == 0x01  # makeCredential without a framing byte
    relying_party.register_complete(state, credential)


async def test_ctap_device_adapter_with_fido2_ctap2(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    """python-fido2's Ctap2 over a hybrid session: getInfo answered locally, one command."""
    client = make_client()
    tasks: list[asyncio.Task[object]] = []

    def show_qr(url: str) -> None:
        tasks.append(
            asyncio.create_task(answer_qr(url, SoftwareAuthenticator(), advertiser, tunnel_url))
        )

    options, state = relying_party.register_begin(USER)
    prepared = prepare_make_credential(dict(options["publicKey"]), ORIGIN)
    async with client.session(show_qr, "mc") as session:
        device = session.ctap_device()

        def use_ctap2() -> bytes:
            ctap2 = Ctap2(device)  # sends getInfo: answered from the post-handshake message
            assert "FIDO_2_1" in ctap2.info.versions
            return device.call(0x10, prepared.ctap_request)

        response = await asyncio.to_thread(use_ctap2)
        with pytest.raises(HybridError, match="one command"):
            await session.transact(prepared.ctap_request)
    relying_party.register_complete(state, finish_make_credential(prepared, response))
    await tasks[0]


async def test_advertiser_stop_is_called_once_whatever_happens(
    advertiser: BumbleAdvertiser, unused_tcp_port: int
) -> None:
    dead = f"ws://127.0.0.1:{unused_tcp_port}"
    for qr_url in ("FIDO:/not-a-code", QRCode.generate()[0].to_url()):
        recorder = RecordingAdvertiser(advertiser)
        with pytest.raises(HybridError):
            await answer_qr(qr_url, SoftwareAuthenticator(), recorder, dead, timeout=5)
        assert recorder.calls == ["stop"]  # never advertised, still stopped exactly once
