"""Noise KNpsk0 / NKpsk0 handshakes (hybrid-protocol.md §6, test-vectors.md §L)."""

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.protocol import HandshakeInitiator, ProtocolError, respond_to_handshake

PSK = bytes(32)


def _key(seed: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(seed, ec.SECP256R1())


def _point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _hkdf(ikm: bytes, salt: bytes, length: int) -> bytes:
    return HKDF(SHA256(), length, salt, b"").derive(ikm)


def test_kn_initial_message_matches_a_straight_transcription_of_the_spec() -> None:
    """Message 1 recomputed step by step from the digest (§6.1, §6.2), not from our code."""
    static, ephemeral = _key(0x1234), _key(0x5678)
    h = ck = b"Noise_KNpsk0_P256_AESGCM_SHA256\x00"
    h = hashlib.sha256(h + b"\x01").digest()
    h = hashlib.sha256(h + _point(static)).digest()
    out = _hkdf(PSK, ck, 96)
    ck, h, k = out[:32], hashlib.sha256(h + out[32:64]).digest(), out[64:]
    e = _point(ephemeral)
    h = hashlib.sha256(h + e).digest()
    out = _hkdf(e, ck, 64)
    ck, k = out[:32], out[32:]
    tag = AESGCM(k).encrypt(bytes(12), b"", h)
    expected = e + tag

    initiator = HandshakeInitiator(PSK, identity=static, ephemeral=ephemeral)
    assert initiator.initial_message() == expected
    assert len(expected) == 81


def test_nk_initial_message_matches_a_straight_transcription_of_the_spec() -> None:
    phone, ephemeral = _key(0xABCD), _key(0x5678)
    h = ck = b"Noise_NKpsk0_P256_AESGCM_SHA256\x00"
    h = hashlib.sha256(h + b"\x00").digest()
    h = hashlib.sha256(h + _point(phone)).digest()
    out = _hkdf(PSK, ck, 96)
    ck, h = out[:32], hashlib.sha256(h + out[32:64]).digest()
    e = _point(ephemeral)
    h = hashlib.sha256(h + e).digest()
    ck = _hkdf(e, ck, 64)[:32]
    out = _hkdf(ephemeral.exchange(ec.ECDH(), phone.public_key()), ck, 64)
    k = out[32:]
    expected = e + AESGCM(k).encrypt(bytes(12), b"", h)
    initiator = HandshakeInitiator(PSK, peer_identity=_point(phone), ephemeral=ephemeral)
    assert initiator.initial_message() == expected


def test_kn_handshake_mirrors_crypters() -> None:
    desktop = _key(2)
    initiator = HandshakeInitiator(PSK, identity=desktop)
    message = initiator.initial_message()
    response, phone_crypter, phone_hash = respond_to_handshake(
        PSK, message, peer_identity=_point(desktop)
    )
    assert len(response) == 81
    desktop_crypter, desktop_hash = initiator.process_response(response)
    assert desktop_hash == phone_hash and len(desktop_hash) == 32
    assert phone_crypter.decrypt(desktop_crypter.encrypt(b"hello")) == b"hello"
    assert desktop_crypter.decrypt(phone_crypter.encrypt(b"world")) == b"world"


def test_nk_handshake_mirrors_crypters() -> None:
    phone = _key(2)
    initiator = HandshakeInitiator(PSK, peer_identity=_point(phone))
    response, phone_crypter, phone_hash = respond_to_handshake(
        PSK, initiator.initial_message(), identity=phone
    )
    desktop_crypter, desktop_hash = initiator.process_response(response)
    assert desktop_hash == phone_hash
    assert phone_crypter.decrypt(desktop_crypter.encrypt(b"x" * 100)) == b"x" * 100


def test_wrong_psk_fails_at_responder() -> None:
    desktop = _key(2)
    message = HandshakeInitiator(PSK, identity=desktop).initial_message()
    bad_psk = bytes([1]) + PSK[1:]
    with pytest.raises(ProtocolError):
        respond_to_handshake(bad_psk, message, peer_identity=_point(desktop))


def test_wrong_identity_fails() -> None:
    message = HandshakeInitiator(PSK, identity=_key(2)).initial_message()
    with pytest.raises(ProtocolError):
        respond_to_handshake(PSK, message, peer_identity=_point(_key(3)))
    nk_message = HandshakeInitiator(PSK, peer_identity=_point(_key(2))).initial_message()
    with pytest.raises(ProtocolError):
        respond_to_handshake(PSK, nk_message, identity=_key(3))


def test_kn_response_from_wrong_static_fails_at_initiator() -> None:
    """A responder that believes in another desktop key produces a response we reject."""
    desktop = _key(2)
    initiator = HandshakeInitiator(PSK, identity=desktop)
    message = initiator.initial_message()
    other = HandshakeInitiator(PSK, identity=_key(3), ephemeral=None)
    # Same ephemeral cannot be forced across instances; build a response for another session.
    response, _, _ = respond_to_handshake(
        PSK, other.initial_message(), peer_identity=_point(_key(3))
    )
    with pytest.raises(ProtocolError):
        initiator.process_response(response)
    assert message  # the initiator's first message is unchanged


@pytest.mark.parametrize("length", [0, 64, 65, 80, 82, 200])
def test_response_must_be_exactly_81_bytes(length: int) -> None:
    initiator = HandshakeInitiator(PSK, identity=_key(2))
    initiator.initial_message()
    with pytest.raises(ProtocolError):
        initiator.process_response(os.urandom(length))


def test_response_with_off_curve_point_fails() -> None:
    initiator = HandshakeInitiator(PSK, identity=_key(2))
    initiator.initial_message()
    with pytest.raises(ProtocolError):
        initiator.process_response(b"\x04" + bytes(64) + bytes(16))


def test_process_response_runs_once_and_after_initial_message() -> None:
    desktop = _key(2)
    initiator = HandshakeInitiator(PSK, identity=desktop)
    with pytest.raises(ProtocolError):
        initiator.process_response(bytes(81))
    message = initiator.initial_message()
    assert initiator.initial_message() == message
    response, _, _ = respond_to_handshake(PSK, message, peer_identity=_point(desktop))
    initiator.process_response(response)
    with pytest.raises(ProtocolError):
        initiator.process_response(response)


def test_responder_rejects_payload_and_truncation() -> None:
    desktop = _key(2)
    message = HandshakeInitiator(PSK, identity=desktop).initial_message()
    for bad in (message[:64], message[:80], message + b"\x00", b"\x05" + message[1:]):
        with pytest.raises(ProtocolError):
            respond_to_handshake(PSK, bad, peer_identity=_point(desktop))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"identity": _key(2), "peer_identity": _point(_key(3))},
        {"identity": b"key"},
        {"peer_identity": bytes(65)},
        {"peer_identity": _point(_key(3))[:33]},
    ],
)
def test_initiator_argument_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        HandshakeInitiator(PSK, **kwargs)  # type: ignore[arg-type]


def test_psk_must_be_32_bytes() -> None:
    with pytest.raises(ProtocolError):
        HandshakeInitiator(bytes(31), identity=_key(2))
    with pytest.raises(ProtocolError):
        respond_to_handshake(bytes(33), bytes(81), peer_identity=_point(_key(2)))


def test_other_curve_key_rejected() -> None:
    with pytest.raises(ProtocolError):
        HandshakeInitiator(PSK, identity=ec.generate_private_key(ec.SECP384R1()))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=120))
def test_any_message_to_responder_is_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        respond_to_handshake(PSK, data, peer_identity=_point(_key(2)))


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=81, max_size=81))
def test_any_response_to_initiator_is_protocol_error(data: bytes) -> None:
    initiator = HandshakeInitiator(PSK, identity=_key(2))
    initiator.initial_message()
    with pytest.raises(ProtocolError):
        initiator.process_response(data)
