"""Key derivation (HKDF-SHA256 with a little-endian 32-bit purpose as info) and P-256 helpers."""

from __future__ import annotations

import enum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hybrid.errors import ProtocolError
from hybrid.protocol.cbor import require_bytes
from hybrid.protocol.constants import COMPRESSED_POINT_SIZE, UNCOMPRESSED_POINT_SIZE

_MAX_HKDF_LENGTH = 255 * 32


class KeyPurpose(enum.IntEnum):
    """The `DerivedValueType` protocol constants."""

    EID_KEY = 1
    TUNNEL_ID = 2
    PSK = 3
    PAIRED_SECRET = 4
    IDENTITY_KEY_SEED = 5
    PER_CONTACT_ID_SECRET = 6


def derive(secret: bytes, salt: bytes, purpose: int, length: int) -> bytes:
    """HKDF-SHA256(ikm=secret, salt=salt, info=LE32(purpose), length)."""
    secret = require_bytes(secret, "secret")
    salt = require_bytes(salt, "salt")
    if isinstance(purpose, bool) or not isinstance(purpose, int):
        raise ProtocolError("purpose must be an integer KeyPurpose")
    try:
        purpose = KeyPurpose(purpose)
    except ValueError:
        raise ProtocolError(f"unknown key purpose {purpose}") from None
    if (
        isinstance(length, bool)
        or not isinstance(length, int)
        or not 0 < length <= _MAX_HKDF_LENGTH
    ):
        raise ProtocolError("length must be between 1 and 8160 bytes")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=salt or None,
        info=int(purpose).to_bytes(4, "little"),
    )
    return hkdf.derive(secret)


def hkdf_sha256(ikm: bytes, salt: bytes, length: int) -> bytes:
    """Plain HKDF-SHA256 with empty info, as Noise's HKDF uses."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=b"").derive(ikm)


def load_point(data: bytes, what: str, *, compressed: bool = False) -> ec.EllipticCurvePublicKey:
    """Parse an X9.62 P-256 point of the expected form; off-curve points are ProtocolErrors."""
    data = require_bytes(data, what)
    size = COMPRESSED_POINT_SIZE if compressed else UNCOMPRESSED_POINT_SIZE
    prefixes = (2, 3) if compressed else (4,)
    if len(data) != size or data[0] not in prefixes:
        form = "compressed" if compressed else "uncompressed"
        raise ProtocolError(f"{what} must be a {size}-byte {form} P-256 point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
    except ValueError:
        raise ProtocolError(f"{what} is not a point on the P-256 curve") from None


def point_bytes(key: ec.EllipticCurvePublicKey, *, compressed: bool = False) -> bytes:
    """Serialise a P-256 public key as X9.62 (65 bytes, or 33 compressed)."""
    fmt = (
        serialization.PublicFormat.CompressedPoint
        if compressed
        else serialization.PublicFormat.UncompressedPoint
    )
    return key.public_bytes(serialization.Encoding.X962, fmt)


def require_p256_private_key(key: object, what: str) -> ec.EllipticCurvePrivateKey:
    """Check that `key` is a P-256 private key."""
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ProtocolError(f"{what} must be a P-256 private key")
    return key


def ecdh(private_key: ec.EllipticCurvePrivateKey, peer: ec.EllipticCurvePublicKey) -> bytes:
    """P-256 ECDH: the 32-byte X coordinate of the shared point."""
    return private_key.exchange(ec.ECDH(), peer)
