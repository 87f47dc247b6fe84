"""Noise KNpsk0 (QR-initiated) and NKpsk0 (linked) handshakes over P-256, as caBLE v2 uses them.

The desktop is always the initiator. Message 1 and message 2 are both `ephemeral(65) ‖ tag(16)`.
"""

from __future__ import annotations

import enum
import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hybrid.errors import ProtocolError, ProtocolReason
from hybrid.protocol.cbor import require_bytes
from hybrid.protocol.constants import PSK_SIZE, UNCOMPRESSED_POINT_SIZE
from hybrid.protocol.crypter import Crypter
from hybrid.protocol.keys import (
    ecdh,
    hkdf_sha256,
    load_point,
    point_bytes,
    require_p256_private_key,
)

HANDSHAKE_MESSAGE_SIZE = UNCOMPRESSED_POINT_SIZE + 16
_HANDSHAKE_NONCE = bytes(12)  # BE32(0) ‖ 8 zero bytes: only nonce 0 is ever used.


class HandshakeType(enum.Enum):
    """KN when the phone answers a QR code; NK when a linked desktop knows the phone's key."""

    KN_PSK0 = b"Noise_KNpsk0_P256_AESGCM_SHA256\x00"
    NK_PSK0 = b"Noise_NKpsk0_P256_AESGCM_SHA256\x00"

    @property
    def prologue(self) -> bytes:
        return b"\x01" if self is HandshakeType.KN_PSK0 else b"\x00"


class _SymmetricState:
    """Noise's SymmetricState with SHA-256 and AES-256-GCM."""

    def __init__(self, handshake_type: HandshakeType) -> None:
        self.chaining_key = self.handshake_hash = handshake_type.value
        self._key = b""

    def mix_hash(self, data: bytes) -> None:
        self.handshake_hash = hashlib.sha256(self.handshake_hash + data).digest()

    def mix_key(self, ikm: bytes) -> None:
        output = hkdf_sha256(ikm, self.chaining_key, 64)
        self.chaining_key, self._key = output[:32], output[32:]

    def mix_key_and_hash(self, ikm: bytes) -> None:
        output = hkdf_sha256(ikm, self.chaining_key, 96)
        self.chaining_key = output[:32]
        self.mix_hash(output[32:64])
        self._key = output[64:]

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = AESGCM(self._key).encrypt(_HANDSHAKE_NONCE, plaintext, self.handshake_hash)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        try:
            plaintext = AESGCM(self._key).decrypt(_HANDSHAKE_NONCE, ciphertext, self.handshake_hash)
        except InvalidTag:
            raise ProtocolError(
                "handshake failed: the peer does not hold this session's keys",
                reason=ProtocolReason.AUTHENTICATION_FAILED,
            ) from None
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[bytes, bytes]:
        output = hkdf_sha256(b"", self.chaining_key, 64)
        return output[:32], output[32:]


def _check_psk(psk: bytes) -> bytes:
    psk = require_bytes(psk, "PSK")
    if len(psk) != PSK_SIZE:
        raise ProtocolError(f"PSK must be {PSK_SIZE} bytes")
    return psk


def _ephemeral(key: ec.EllipticCurvePrivateKey | None) -> ec.EllipticCurvePrivateKey:
    if key is None:
        return ec.generate_private_key(ec.SECP256R1())
    return require_p256_private_key(key, "ephemeral key")


def _handshake_type(
    identity: ec.EllipticCurvePrivateKey | None, peer_identity: bytes | None, *, initiator: bool
) -> HandshakeType:
    """KN: initiator has identity, responder has peer_identity. NK: the other way round."""
    if (identity is None) == (peer_identity is None):
        raise ProtocolError("give exactly one of identity= and peer_identity=")
    initiator_knows_own_key = identity is not None if initiator else peer_identity is not None
    return HandshakeType.KN_PSK0 if initiator_knows_own_key else HandshakeType.NK_PSK0


class HandshakeInitiator:
    """The desktop's side of the handshake.

    KNpsk0: `identity` is the QR code's private key. NKpsk0: `peer_identity` is the linked
    phone's 65-byte public point.
    """

    def __init__(
        self,
        psk: bytes,
        *,
        identity: ec.EllipticCurvePrivateKey | None = None,
        peer_identity: bytes | None = None,
        ephemeral: ec.EllipticCurvePrivateKey | None = None,
    ) -> None:
        self._psk = _check_psk(psk)
        self._type = _handshake_type(identity, peer_identity, initiator=True)
        self._identity = (
            None if identity is None else require_p256_private_key(identity, "identity")
        )
        self._peer_identity = (
            None if peer_identity is None else load_point(peer_identity, "peer identity")
        )
        self._ephemeral = _ephemeral(ephemeral)
        self._state: _SymmetricState | None = None
        self._message: bytes | None = None

    @property
    def handshake_type(self) -> HandshakeType:
        return self._type

    def initial_message(self) -> bytes:
        """Message 1: `e(65) ‖ tag(16)`. Computed once; repeated calls return the same bytes."""
        if self._message is not None:
            return self._message
        state = _SymmetricState(self._type)
        state.mix_hash(self._type.prologue)
        if self._identity is not None:
            state.mix_hash(point_bytes(self._identity.public_key()))
        else:
            assert self._peer_identity is not None
            state.mix_hash(point_bytes(self._peer_identity))
        state.mix_key_and_hash(self._psk)
        ephemeral_public = point_bytes(self._ephemeral.public_key())
        state.mix_hash(ephemeral_public)
        state.mix_key(ephemeral_public)
        if self._peer_identity is not None:
            state.mix_key(ecdh(self._ephemeral, self._peer_identity))  # es
        self._message = ephemeral_public + state.encrypt_and_hash(b"")
        self._state = state
        return self._message

    def process_response(self, message: bytes) -> tuple[Crypter, bytes]:
        """Check message 2 (exactly 81 bytes); return (Crypter, handshake hash). Single use."""
        message = require_bytes(message, "handshake response")
        state, self._state = self._state, None
        if state is None:
            raise ProtocolError("process_response needs initial_message first, and runs once")
        if len(message) != HANDSHAKE_MESSAGE_SIZE:
            raise ProtocolError(
                f"handshake response must be {HANDSHAKE_MESSAGE_SIZE} bytes, got {len(message)}"
            )
        peer_bytes = message[:UNCOMPRESSED_POINT_SIZE]
        peer_ephemeral = load_point(peer_bytes, "peer ephemeral key")
        state.mix_hash(peer_bytes)
        state.mix_key(peer_bytes)
        state.mix_key(ecdh(self._ephemeral, peer_ephemeral))  # ee
        if self._identity is not None:
            state.mix_key(ecdh(self._identity, peer_ephemeral))  # se
        if state.decrypt_and_hash(message[UNCOMPRESSED_POINT_SIZE:]) != b"":
            raise ProtocolError("handshake response carries an unexpected payload")
        write_key, read_key = state.split()
        return Crypter(read_key=read_key, write_key=write_key), state.handshake_hash


def respond_to_handshake(
    psk: bytes,
    message: bytes,
    *,
    identity: ec.EllipticCurvePrivateKey | None = None,
    peer_identity: bytes | None = None,
    ephemeral: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[bytes, Crypter, bytes]:
    """The phone's side: check message 1, return (response(81), Crypter, handshake hash).

    KNpsk0: `peer_identity` is the desktop's 65-byte QR point. NKpsk0: `identity` is the
    phone's identity private key.
    """
    psk = _check_psk(psk)
    message = require_bytes(message, "handshake message")
    handshake_type = _handshake_type(identity, peer_identity, initiator=False)
    own_identity = None if identity is None else require_p256_private_key(identity, "identity")
    peer_static = None if peer_identity is None else load_point(peer_identity, "peer identity")
    if len(message) < UNCOMPRESSED_POINT_SIZE:
        raise ProtocolError("handshake message is truncated")
    peer_bytes = message[:UNCOMPRESSED_POINT_SIZE]
    peer_ephemeral = load_point(peer_bytes, "peer ephemeral key")

    state = _SymmetricState(handshake_type)
    state.mix_hash(handshake_type.prologue)
    if own_identity is not None:
        state.mix_hash(point_bytes(own_identity.public_key()))
    else:
        assert peer_static is not None
        state.mix_hash(point_bytes(peer_static))
    state.mix_key_and_hash(psk)
    state.mix_hash(peer_bytes)
    state.mix_key(peer_bytes)
    if own_identity is not None:
        state.mix_key(ecdh(own_identity, peer_ephemeral))  # es
    if state.decrypt_and_hash(message[UNCOMPRESSED_POINT_SIZE:]) != b"":
        raise ProtocolError("handshake message carries an unexpected payload")

    own_ephemeral = _ephemeral(ephemeral)
    ephemeral_public = point_bytes(own_ephemeral.public_key())
    state.mix_hash(ephemeral_public)
    state.mix_key(ephemeral_public)
    state.mix_key(ecdh(own_ephemeral, peer_ephemeral))  # ee
    if peer_static is not None:
        state.mix_key(ecdh(own_ephemeral, peer_static))  # se
    response = ephemeral_public + state.encrypt_and_hash(b"")
    read_key, write_key = state.split()
    return response, Crypter(read_key=read_key, write_key=write_key), state.handshake_hash
