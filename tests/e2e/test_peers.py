"""Our roles against hand-built peers: a garbage-sending desktop, a v2.0 phone, fido2's Ctap2."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.ctap2.base import Ctap2
from fido2.server import Fido2Server
from fido2.webauthn import ResidentKeyRequirement

from hybrid.authenticator import PhoneSessionResult, SoftwareAuthenticator, answer_qr
from hybrid.ble.advertiser import Advertiser
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.ble.scanner import CableScanner
from hybrid.desktop import HybridClient
from hybrid.errors import (
    CeremonyTimeout,
    HybridError,
    ProtocolError,
    ProtocolReason,
    SessionSpent,
)
from hybrid.protocol import (
    Crypter,
    Eid,
    HandshakeInitiator,
    LinkingInfo,
    MessageType,
    PostHandshakeMessage,
    QRCode,
    compute_pairing_signature,
    decrypt_advert,
    encode_message,
    encode_update,
    encrypt_advert,
    respond_to_handshake,
)
from hybrid.protocol.crypter import pad, unpad
from hybrid.protocol.keys import point_bytes
from hybrid.tunnel import Tunnel
from hybrid.webauthn import finish_make_credential, prepare_make_credential
from tests.conftest import ORIGIN, USER
from tests.e2e.phones import verifying_phone
from tunnel_server import TunnelServer

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
    async with CableScanner(BumbleScannerBackend, {"radio": radio}) as scanner:
        async for advert in scanner.adverts():
            eid = decrypt_advert(qr.eid_key, advert.service_data)
            if eid is not None:
                return eid
    raise AssertionError("scanner stopped")


async def _phone_and_raw_desktop(
    radio: VirtualRadio, advertiser: Advertiser, server_url: str
) -> tuple[QRCode, ec.EllipticCurvePrivateKey, Eid, asyncio.Task[PhoneSessionResult], Tunnel]:
    """`answer_qr` running, and a desktop tunnel joined to it that has sent nothing yet."""
    qr, qr_key = QRCode.generate()
    phone = asyncio.create_task(
        answer_qr(qr.to_url(), verifying_phone(), advertiser, server_url, timeout=10)
    )
    eid = await _find_phone(radio, qr)
    tunnel = await Tunnel.open_connect(server_url, eid.routing_id, qr.tunnel_id)
    return qr, qr_key, eid, phone, tunnel


async def test_phone_gives_up_when_no_desktop_connects(
    advertiser: BumbleAdvertiser, local_server: TunnelServer
) -> None:
    recorder = RecordingAdvertiser(advertiser)
    qr, _ = QRCode.generate()
    with pytest.raises(CeremonyTimeout) as caught:
        await answer_qr(qr.to_url(), verifying_phone(), recorder, local_server.url, timeout=0.5)
    assert (caught.value.waiting_for, caught.value.seconds) == ("computer", 0.5)
    assert recorder.calls == ["advertise", "stop"]
    await asyncio.sleep(0.1)
    assert local_server.active_tunnels() == 0  # the phone's tunnel is gone too


async def test_desktop_sending_garbage_gets_a_clean_close(
    radio: VirtualRadio, advertiser: BumbleAdvertiser, local_server: TunnelServer
) -> None:
    recorder = RecordingAdvertiser(advertiser)

    _, _, _, phone, desktop = await _phone_and_raw_desktop(radio, recorder, local_server.url)
    await desktop.send(os.urandom(81))  # not a handshake message
    with pytest.raises(ProtocolError) as caught:
        await asyncio.wait_for(phone, 10)
    assert caught.value.peer == "computer"
    failed = (ProtocolReason.MALFORMED, ProtocolReason.AUTHENTICATION_FAILED)
    assert caught.value.reason in failed
    assert recorder.calls == ["advertise", "stop"]
    with pytest.raises(HybridError):
        await asyncio.wait_for(desktop.recv(), 5)  # the phone closed the tunnel
    await desktop.close()
    await asyncio.sleep(0.1)
    assert local_server.active_tunnels() == 0


class OldCrypter:
    """The pre-2022 Android record construction: LE32 counter first, additional data 0x02."""

    def __init__(self, keys_of: Crypter) -> None:
        self._read, self._write = keys_of._read, keys_of._write  # same keys as the handshake's
        self._reads = self._writes = 0

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = self._writes.to_bytes(4, "little") + bytes(8)
        self._writes += 1
        return self._write.encrypt(nonce, pad(plaintext), b"\x02")

    def decrypt(self, ciphertext: bytes) -> bytes:
        nonce = self._reads.to_bytes(4, "little") + bytes(8)
        self._reads += 1
        return unpad(self._read.decrypt(nonce, ciphertext, b"\x02"))


async def hand_built_phone(
    url: str,
    tunnel_url: str,
    advertiser: BumbleAdvertiser,
    authenticator: SoftwareAuthenticator,
    *,
    revision: int,
    linking: Callable[[QRCode, bytes], LinkingInfo] | None = None,
    old_records: bool = False,
    updates: int = 1,
) -> bytes:
    """A phone written from the protocol pieces, with the variations real phones have."""
    qr = QRCode.from_url(url)
    tunnel = await Tunnel.open_new(tunnel_url, qr.tunnel_id)
    assert tunnel.routing_id is not None
    eid = Eid(os.urandom(10), tunnel.routing_id, 0)
    await advertiser.advertise(encrypt_advert(qr.eid_key, eid))
    message = await tunnel.recv()
    await advertiser.stop()
    response, crypter, handshake_hash = respond_to_handshake(
        qr.psk(eid), message, peer_identity=qr.public_point
    )
    records: Crypter | OldCrypter = OldCrypter(crypter) if old_records else crypter
    await tunnel.send(response)
    info = linking(qr, handshake_hash) if linking else None
    post = PostHandshakeMessage(
        get_info=authenticator.get_info_cbor(),
        linking=info if revision == 0 else None,
        revision=revision,
    )
    await tunnel.send(records.encrypt(post.encode()))
    for _ in range(updates if revision == 1 else 0):
        await tunnel.send(records.encrypt(encode_update(info)))
    request = records.decrypt(await tunnel.recv())
    if revision == 1:
        assert request[0] == MessageType.CTAP
        request = request[1:]
    reply = await authenticator.handle_ctap(request)
    await tunnel.send(records.encrypt(reply if revision == 0 else b"\x01" + reply))
    await tunnel.close()
    return request


def _linking(qr: QRCode, handshake_hash: bytes, *, forged: bool = False) -> LinkingInfo:
    phone_identity = ec.generate_private_key(ec.SECP256R1())
    signed_hash = os.urandom(32) if forged else handshake_hash
    return LinkingInfo(
        contact_id=os.urandom(32),
        link_id=os.urandom(8),
        link_secret=os.urandom(32),
        authenticator_public_key=point_bytes(phone_identity.public_key()),
        authenticator_name="Hand-built phone",
        handshake_signature=compute_pairing_signature(phone_identity, qr.public_point, signed_hash),
    )


async def _register_with(
    client: HybridClient,
    relying_party: Fido2Server,
    phone: Callable[[str], Coroutine[Any, Any, bytes]],
) -> bytes:
    tasks: list[asyncio.Task[bytes]] = []
    options, state = relying_party.register_begin(
        USER, resident_key_requirement=ResidentKeyRequirement.REQUIRED
    )
    try:
        credential = await client.make_credential(
            dict(options["publicKey"]), lambda url: tasks.append(asyncio.create_task(phone(url)))
        )
    finally:
        done, _ = await asyncio.wait(tasks, timeout=10)
        assert done == set(tasks)
    relying_party.register_complete(state, credential)
    return tasks[0].result()


@pytest.mark.parametrize("revision", [0, 1])
async def test_desktop_accepts_linking_info_in_either_place(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
    revision: int,
) -> None:
    """v2.0: padded post-handshake map with linking in key 2, untyped CTAP, no shutdown.
    v2.1: plain map, linking in the update message, typed frames."""
    client = make_client()
    request = await _register_with(
        client,
        relying_party,
        lambda url: hand_built_phone(
            url,
            tunnel_url,
            advertiser,
            verifying_phone(),
            revision=revision,
            linking=_linking,
        ),
    )
    assert request[0] == 0x01  # makeCredential
    assert client.linking_info is not None
    assert client.linking_info.authenticator_name == "Hand-built phone"


async def test_desktop_switches_to_the_old_record_construction(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    """Older Android Chrome: LE32 counter first and additional data 0x02, both directions."""
    request = await _register_with(
        make_client(),
        relying_party,
        lambda url: hand_built_phone(
            url, tunnel_url, advertiser, verifying_phone(), revision=1, old_records=True
        ),
    )
    assert request[0] == 0x01


async def test_forged_linking_info_fails_the_session(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    client = make_client()
    with pytest.raises(ProtocolError) as caught:
        await _register_with(
            client,
            relying_party,
            lambda url: hand_built_phone(
                url,
                tunnel_url,
                advertiser,
                verifying_phone(),
                revision=1,
                linking=functools.partial(_linking, forged=True),
            ),
        )
    assert (caught.value.reason, caught.value.peer) == (
        ProtocolReason.AUTHENTICATION_FAILED,
        "phone",
    )
    assert client.linking_info is None


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
        tasks.append(asyncio.create_task(answer_qr(url, verifying_phone(), advertiser, tunnel_url)))

    options, state = relying_party.register_begin(USER)
    prepared = prepare_make_credential(dict(options["publicKey"]), ORIGIN)
    async with client.session(show_qr, "mc") as session:
        device = session.ctap_device()

        def use_ctap2() -> bytes:
            ctap2 = Ctap2(device)  # sends getInfo: answered from the post-handshake message
            assert "FIDO_2_1" in ctap2.info.versions
            return device.call(0x10, prepared.ctap_request_for(ctap2.info))

        response = await asyncio.to_thread(use_ctap2)
        with pytest.raises(SessionSpent):
            await session.transact(prepared.ctap_request_for(session.info))
    relying_party.register_complete(state, finish_make_credential(prepared, response))
    await tasks[0]


async def test_advertiser_stop_is_called_once_whatever_happens(
    advertiser: BumbleAdvertiser, unused_tcp_port: int
) -> None:
    dead = f"ws://127.0.0.1:{unused_tcp_port}"
    for qr_url in ("FIDO:/not-a-code", QRCode.generate()[0].to_url()):
        recorder = RecordingAdvertiser(advertiser)
        with pytest.raises(HybridError):
            await answer_qr(qr_url, verifying_phone(), recorder, dead, timeout=5)
        assert recorder.calls == ["stop"]  # never advertised, still stopped exactly once


async def test_a_phone_flooding_update_messages_is_cut_off(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    options, _ = relying_party.authenticate_begin()
    tasks: list[asyncio.Task[bytes]] = []

    def show_qr(url: str) -> None:
        phone = hand_built_phone(
            url, tunnel_url, advertiser, verifying_phone(), revision=1, updates=40
        )
        tasks.append(asyncio.create_task(phone))

    with pytest.raises(ProtocolError) as caught:
        await make_client().get_assertion(dict(options["publicKey"]), show_qr)
    assert (caught.value.reason, caught.value.peer) == (ProtocolReason.TOO_MANY_UPDATES, "phone")
    done, _ = await asyncio.wait(tasks, timeout=10)  # it got its request in, then was cut off
    assert done == set(tasks)


async def test_a_desktop_flooding_update_messages_is_cut_off(
    radio: VirtualRadio, advertiser: BumbleAdvertiser, local_server: TunnelServer
) -> None:
    qr, qr_key, eid, phone, tunnel = await _phone_and_raw_desktop(
        radio, advertiser, local_server.url
    )
    initiator = HandshakeInitiator(qr.psk(eid), identity=qr_key)
    await tunnel.send(initiator.initial_message())
    crypter, _ = initiator.process_response(await tunnel.recv())
    for _ in range(40):
        await tunnel.send(crypter.encrypt(encode_message(MessageType.UPDATE, b"\xa0")))
    with pytest.raises(ProtocolError) as caught:
        await asyncio.wait_for(phone, 10)
    assert caught.value.reason is ProtocolReason.TOO_MANY_UPDATES
    assert caught.value.peer == "computer"
    await tunnel.close()
