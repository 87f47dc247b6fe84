"""The desktop and phone conversations, byte by byte, with no sockets and no event loop.

Each side is checked against the other and against a peer written from the protocol pieces
(Noise responder/initiator and `Crypter`), so a bug shared by both machines still shows.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.ctap2.base import Info
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.authenticator import SoftwareAuthenticator, approve_all
from hybrid.ctap import decode_cbor_map
from hybrid.errors import PeerError, PeerReason, ProtocolError, ProtocolReason, SessionSpent
from hybrid.protocol import (
    MAX_UPDATES,
    Connected,
    Crypter,
    CtapReply,
    CtapRequest,
    DesktopConversation,
    Eid,
    HandshakeInitiator,
    LinkingReceived,
    MessageType,
    PeerShutdown,
    PhoneConversation,
    PostHandshakeMessage,
    QRCode,
    State,
    encode_message,
    encode_update,
    new_linking_info,
    respond_to_handshake,
)
from hybrid.protocol.conversation import Conversation
from tests.protocol.vectors import I1_ANDROID_CHROME, J4_REQUEST

GET_INFO = SoftwareAuthenticator(approve=approve_all, verifies_user=True).get_info_cbor()
REQUEST = J4_REQUEST[1:]  # the CTAP 2.1 spec's makeCredential, without the frame type
REPLY = b"\x00\xa1\x01\x64none"


def _eid() -> Eid:
    return Eid(os.urandom(10), b"\x01\x02\x03", 0)


def _v20_qr() -> tuple[QRCode, ec.EllipticCurvePrivateKey]:
    """A QR code as a v2.0 desktop writes it: no key 4."""
    qr, key = QRCode.generate()
    return QRCode(public_key=qr.public_key, secret=qr.secret, supports_linking=None), key


class HandBuiltPhone:
    """A phone from the protocol pieces: Noise responder and raw records."""

    def __init__(self, qr: QRCode, eid: Eid, desktop: DesktopConversation) -> None:
        (handshake,) = desktop.data_to_send()
        response, self.crypter, self.handshake_hash = respond_to_handshake(
            qr.psk(eid), handshake, peer_identity=qr.public_point
        )
        assert desktop.receive(response) == []
        self.qr = qr

    def record(self, plaintext: bytes) -> bytes:
        return self.crypter.encrypt(plaintext)


def _desktop_with_phone(
    revision: int = 1,
) -> tuple[DesktopConversation, HandBuiltPhone, list[object]]:
    qr, key = QRCode.generate()
    eid = _eid()
    desktop = DesktopConversation(qr, key, eid)
    phone = HandBuiltPhone(qr, eid, desktop)
    post = PostHandshakeMessage(get_info=GET_INFO, revision=revision)
    events: list[object] = list(desktop.receive(phone.record(post.encode())))
    return desktop, phone, events


def _pair(
    qr: QRCode, key: ec.EllipticCurvePrivateKey, link_name: str | None = None
) -> tuple[DesktopConversation, PhoneConversation, list[object]]:
    """Both machines, handshake done; the desktop's events from the phone's opening records."""
    eid = _eid()
    desktop = DesktopConversation(qr, key, eid)
    phone = PhoneConversation(qr, eid, GET_INFO, link_name=link_name)
    (handshake,) = desktop.data_to_send()
    assert phone.receive(handshake) == [Connected(phone.revision)]
    events: list[object] = []
    for message in phone.data_to_send():
        events += desktop.receive(message)
    return desktop, phone, events


def test_revision_1_conversation_end_to_end() -> None:
    qr, key = QRCode.generate()
    desktop, phone, events = _pair(qr, key)
    assert events == [Connected(1, GET_INFO)]
    assert desktop.state is State.READY and phone.state is State.READY
    desktop.send_request(REQUEST)
    (request,) = desktop.data_to_send()
    assert phone.receive(request) == [CtapRequest(REQUEST)]
    assert phone.state.value == "answering"
    phone.send_reply(REPLY)
    (reply,) = phone.data_to_send()
    assert desktop.receive(reply) == [CtapReply(REPLY)]
    desktop.close()
    (shutdown,) = desktop.data_to_send()
    assert phone.receive(shutdown) == [PeerShutdown()]
    assert (desktop.state, phone.state) == (State.CLOSED, State.CLOSED)


def test_phone_opening_records_byte_by_byte() -> None:
    """Noise response 81 bytes; post-handshake map; the update padded to a 528-byte record."""
    qr, key = QRCode.generate()
    eid = _eid()
    initiator = HandshakeInitiator(qr.psk(eid), identity=key)
    phone = PhoneConversation(qr, eid, GET_INFO)
    phone.receive(initiator.initial_message())
    response, post, update = phone.data_to_send()
    assert len(response) == 81 and len(update) == 528
    records, _ = initiator.process_response(response)
    assert records.decrypt(post) == PostHandshakeMessage(get_info=GET_INFO).encode()
    assert records.decrypt(update) == encode_update(None)
    records.encrypt(b"")  # keep the counters in step: the desktop sent nothing yet
    assert phone.linked is False


def test_desktop_frames_byte_by_byte() -> None:
    desktop, phone, events = _desktop_with_phone()
    assert events == [Connected(1, GET_INFO)]
    desktop.send_request(REQUEST)
    (request,) = desktop.data_to_send()
    assert phone.crypter.decrypt(request) == J4_REQUEST  # 0x01 ‖ CBOR, as the spec's example
    desktop.receive(phone.record(encode_message(MessageType.CTAP, REPLY)))
    desktop.close()
    (shutdown,) = desktop.data_to_send()
    assert phone.crypter.decrypt(shutdown) == b"\x00"
    desktop.close()  # idempotent, nothing more to send
    assert desktop.data_to_send() == []


def test_desktop_reads_android_chromes_post_handshake_vector() -> None:
    qr, key = QRCode.generate()
    eid = _eid()
    desktop = DesktopConversation(qr, key, eid)
    phone = HandBuiltPhone(qr, eid, desktop)
    (connected,) = desktop.receive(phone.record(I1_ANDROID_CHROME))
    assert isinstance(connected, Connected) and connected.revision == 1
    info = Info.from_dict(decode_cbor_map(connected.get_info))
    assert info.versions == ["FIDO_2_0", "FIDO_2_1"]


def test_revision_0_conversation() -> None:
    """v2.0: a QR code without key 4, padded post-handshake map, untyped CTAP, no shutdown."""
    qr, key = _v20_qr()
    desktop, phone, events = _pair(qr, key, link_name="ignored")
    assert events == [Connected(0, GET_INFO)]  # and no update message was sent
    assert desktop.revision == phone.revision == 0 and phone.linked is False
    desktop.send_request(REQUEST)
    (request,) = desktop.data_to_send()
    assert phone.receive(request) == [CtapRequest(REQUEST)]
    phone.send_reply(REPLY)
    assert phone.state is State.CLOSED  # nothing more to wait for
    (reply,) = phone.data_to_send()
    assert desktop.receive(reply) == [CtapReply(REPLY)]
    desktop.close()
    assert desktop.data_to_send() == []


def test_revision_0_records_are_untyped_and_padded() -> None:
    qr, key = _v20_qr()
    eid = _eid()
    initiator = HandshakeInitiator(qr.psk(eid), identity=key)
    phone = PhoneConversation(qr, eid, GET_INFO)
    phone.receive(initiator.initial_message())
    response, post = phone.data_to_send()
    records, _ = initiator.process_response(response)
    plaintext = records.decrypt(post)
    assert len(plaintext) % 512 == 0
    assert PostHandshakeMessage.decode(plaintext).revision == 0
    phone.receive(records.encrypt(REQUEST))
    phone.send_reply(REPLY)
    assert records.decrypt(phone.data_to_send()[0]) == REPLY


def test_linking_info_from_the_phone_is_verified_and_reported() -> None:
    qr, key = QRCode.generate()
    _, phone, events = _pair(qr, key, link_name="Test phone")
    assert phone.linked is True
    assert events[0] == Connected(1, GET_INFO)
    assert isinstance(events[1], LinkingReceived)
    assert events[1].linking.authenticator_name == "Test phone"


def test_revision_0_linking_inside_the_post_handshake_message() -> None:
    qr, key = QRCode.generate()
    eid = _eid()
    desktop = DesktopConversation(qr, key, eid)
    phone = HandBuiltPhone(qr, eid, desktop)
    linking = new_linking_info(qr, phone.handshake_hash, "Old phone")
    post = PostHandshakeMessage(get_info=GET_INFO, linking=linking, revision=0)
    assert desktop.receive(phone.record(post.encode())) == [
        Connected(0, GET_INFO),
        LinkingReceived(linking),
    ]


def test_forged_linking_info_is_an_authentication_failure() -> None:
    desktop, phone, _ = _desktop_with_phone()
    forged = new_linking_info(phone.qr, os.urandom(32), "Forger")
    with pytest.raises(ProtocolError) as caught:
        desktop.receive(phone.record(encode_update(forged)))
    assert caught.value.reason is ProtocolReason.AUTHENTICATION_FAILED


@pytest.mark.parametrize("side", ["desktop", "phone"])
def test_update_limit(side: str) -> None:
    qr, key = QRCode.generate()
    desktop, phone, _ = _pair(qr, key)  # the phone's one update is already counted
    sender: Conversation = phone if side == "desktop" else desktop
    receiver: DesktopConversation | PhoneConversation = desktop if side == "desktop" else phone
    update = (
        encode_update(None) if side == "desktop" else encode_message(MessageType.UPDATE, b"\xa0")
    )
    allowed = MAX_UPDATES - 1 if side == "desktop" else MAX_UPDATES
    for _ in range(allowed):
        sender._send_record(update)
        assert receiver.receive(sender.data_to_send()[0]) == []
    sender._send_record(update)
    with pytest.raises(ProtocolError) as caught:
        receiver.receive(sender.data_to_send()[0])
    assert caught.value.reason is ProtocolReason.TOO_MANY_UPDATES


def test_phone_shutdown_instead_of_an_answer_is_a_peer_error() -> None:
    desktop, phone, _ = _desktop_with_phone()
    desktop.send_request(REQUEST)
    with pytest.raises(PeerError) as caught:
        desktop.receive(phone.record(encode_message(MessageType.SHUTDOWN)))
    assert caught.value.reason is PeerReason.ENDED_WITHOUT_ANSWER


def test_phone_without_ctap_is_a_peer_error() -> None:
    qr, key = QRCode.generate()
    eid = _eid()
    desktop = DesktopConversation(qr, key, eid)
    phone = HandBuiltPhone(qr, eid, desktop)
    post = PostHandshakeMessage(get_info=None, features=("dcp",))
    with pytest.raises(PeerError) as caught:
        desktop.receive(phone.record(post.encode()))
    assert caught.value.reason is PeerReason.NO_CTAP


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (encode_message(MessageType.CTAP, REPLY), ProtocolReason.UNEXPECTED_MESSAGE),  # unasked
        (encode_message(MessageType.JSON, b"{}"), ProtocolReason.UNEXPECTED_MESSAGE),
        (b"\x01", ProtocolReason.EMPTY_CTAP_MESSAGE),
        (b"\x09", ProtocolReason.MALFORMED),  # unknown type
        (b"\x02\xff", ProtocolReason.MALFORMED),  # update that is not CBOR
    ],
)
def test_desktop_refuses_bad_frames(frame: bytes, reason: ProtocolReason) -> None:
    desktop, phone, _ = _desktop_with_phone()
    with pytest.raises(ProtocolError) as caught:
        desktop.receive(phone.record(frame))
    assert caught.value.reason is reason


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (encode_message(MessageType.JSON, b"{}"), ProtocolReason.UNEXPECTED_MESSAGE),
        (b"\x01", ProtocolReason.EMPTY_CTAP_MESSAGE),
        (b"\x02\x80", ProtocolReason.MALFORMED),  # update that is not a map
    ],
)
def test_phone_refuses_bad_frames(frame: bytes, reason: ProtocolReason) -> None:
    qr, key = QRCode.generate()
    desktop, phone, _ = _pair(qr, key)
    desktop._send_record(frame)
    with pytest.raises(ProtocolError) as caught:
        phone.receive(desktop.data_to_send()[0])
    assert caught.value.reason is reason


def test_phone_refuses_a_second_request_while_answering() -> None:
    qr, key = QRCode.generate()
    desktop, phone, _ = _pair(qr, key)
    for _ in range(2):
        desktop._send_frame(MessageType.CTAP, REQUEST)
    first, second = desktop.data_to_send()
    phone.receive(first)
    with pytest.raises(ProtocolError) as caught:
        phone.receive(second)
    assert caught.value.reason is ProtocolReason.UNEXPECTED_MESSAGE


def test_desktop_hanging_up_before_its_request() -> None:
    qr, key = QRCode.generate()
    desktop, phone, _ = _pair(qr, key)
    desktop.close()
    assert phone.receive(desktop.data_to_send()[0]) == [PeerShutdown()]
    assert phone.state is State.CLOSED


def test_one_request_per_session_and_none_before_the_handshake() -> None:
    qr, key = QRCode.generate()
    early = DesktopConversation(qr, key, _eid())
    with pytest.raises(ProtocolError) as caught:
        early.send_request(REQUEST)
    assert caught.value.reason is ProtocolReason.UNEXPECTED_MESSAGE
    desktop, _, _ = _desktop_with_phone()
    desktop.send_request(REQUEST)
    with pytest.raises(SessionSpent):
        desktop.send_request(REQUEST)


def test_phone_cannot_reply_without_a_request() -> None:
    qr, key = QRCode.generate()
    _, phone, _ = _pair(qr, key)
    with pytest.raises(ProtocolError):
        phone.send_reply(REPLY)


def test_wrong_advert_means_wrong_psk() -> None:
    """A desktop that read another EID derives another PSK: the handshake fails, typed."""
    qr, key = QRCode.generate()
    desktop = DesktopConversation(qr, key, _eid())
    phone = PhoneConversation(qr, _eid(), GET_INFO)
    with pytest.raises(ProtocolError) as caught:
        phone.receive(desktop.data_to_send()[0])
    assert caught.value.reason is ProtocolReason.AUTHENTICATION_FAILED


def _desktop_at(stage: str) -> DesktopConversation:
    qr, key = QRCode.generate()
    eid = _eid()
    desktop = DesktopConversation(qr, key, eid)
    if stage == "post_handshake":
        HandBuiltPhone(qr, eid, desktop)
    elif stage == "ready":
        desktop = _desktop_with_phone()[0]
    return desktop


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(["handshake", "post_handshake", "ready"]))
def test_random_bytes_from_the_phone_are_protocol_errors(data: bytes, stage: str) -> None:
    """Bad input never crashes: any bytes at any stage end in a typed error."""
    desktop = _desktop_at(stage)
    with pytest.raises(ProtocolError):
        desktop.receive(data)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_from_the_desktop_are_protocol_errors(data: bytes) -> None:
    qr, _ = QRCode.generate()
    phone = PhoneConversation(qr, _eid(), GET_INFO)
    with pytest.raises(ProtocolError):
        phone.receive(data)


def test_records_use_the_handshake_keys_in_order() -> None:
    """Record n uses counter n: replaying a record is an authentication failure."""
    desktop, phone, _ = _desktop_with_phone()
    update = phone.record(encode_update(None))
    desktop.receive(update)
    with pytest.raises(ProtocolError) as caught:
        desktop.receive(update)
    assert caught.value.reason is ProtocolReason.AUTHENTICATION_FAILED
    assert isinstance(phone.crypter, Crypter)


def test_the_protocol_core_imports_no_io_library() -> None:
    """Sans-I/O for real: a fresh interpreter importing hybrid.protocol loads no event loop."""
    code = (
        "import sys, hybrid.protocol; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'asyncio', 'websockets', 'bleak', 'bumble', 'fido2'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
