"""Linking info: what a phone sends so the desktop can later reach it without a QR code."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from hybrid.errors import ProtocolError, ProtocolReason
from hybrid.protocol.cbor import require_bytes
from hybrid.protocol.keys import ecdh, load_point, require_p256_private_key

_KEY_CONTACT_ID = 1
_KEY_LINK_ID = 2
_KEY_LINK_SECRET = 3
_KEY_PUBLIC_KEY = 4
_KEY_NAME = 5
_KEY_SIGNATURE = 6
_KEY_NEW_IMPLEMENTATION = 999
_SIGNATURE_SIZE = 32


@dataclass(frozen=True)
class LinkingInfo:
    """The linking map (keys 1-6; Chromium's key 999 is kept as `from_new_implementation`)."""

    contact_id: bytes
    link_id: bytes
    link_secret: bytes
    authenticator_public_key: bytes
    authenticator_name: str
    handshake_signature: bytes
    from_new_implementation: bool | None = None

    def __post_init__(self) -> None:
        for name in ("contact_id", "link_id", "link_secret", "handshake_signature"):
            object.__setattr__(self, name, require_bytes(getattr(self, name), name))
        load_point(self.authenticator_public_key, "linking key 4 (authenticator public key)")
        if not isinstance(self.authenticator_name, str):
            raise ProtocolError("linking key 5 (authenticator name) must be a string")

    def __repr__(self) -> str:  # the link secret must not reach logs
        name = self.authenticator_name
        return f"LinkingInfo(name={name!r}, contact_id=<{len(self.contact_id)} bytes>)"

    def to_map(self) -> dict[int, Any]:
        """The CBOR map form."""
        contents: dict[int, Any] = {
            _KEY_CONTACT_ID: self.contact_id,
            _KEY_LINK_ID: self.link_id,
            _KEY_LINK_SECRET: self.link_secret,
            _KEY_PUBLIC_KEY: self.authenticator_public_key,
            _KEY_NAME: self.authenticator_name,
            _KEY_SIGNATURE: self.handshake_signature,
        }
        if self.from_new_implementation is not None:
            contents[_KEY_NEW_IMPLEMENTATION] = self.from_new_implementation
        return contents

    @classmethod
    def from_map(cls, contents: object) -> LinkingInfo:
        """Parse and type-check a linking map (signature not checked: see `verify`)."""
        if not isinstance(contents, dict):
            raise ProtocolError("linking info is not a CBOR map")
        values: dict[int, Any] = {}
        for key in (
            _KEY_CONTACT_ID,
            _KEY_LINK_ID,
            _KEY_LINK_SECRET,
            _KEY_PUBLIC_KEY,
            _KEY_SIGNATURE,
        ):
            value = contents.get(key)
            if not isinstance(value, bytes):
                raise ProtocolError(f"linking info key {key} is missing or not a byte string")
            values[key] = value
        name = contents.get(_KEY_NAME)
        if not isinstance(name, str):
            raise ProtocolError("linking info key 5 (name) is missing or not a string")
        new_impl = contents.get(_KEY_NEW_IMPLEMENTATION)
        if new_impl is not None and not isinstance(new_impl, bool):
            raise ProtocolError("linking info key 999 must be a boolean")
        return cls(
            contact_id=values[_KEY_CONTACT_ID],
            link_id=values[_KEY_LINK_ID],
            link_secret=values[_KEY_LINK_SECRET],
            authenticator_public_key=values[_KEY_PUBLIC_KEY],
            authenticator_name=name,
            handshake_signature=values[_KEY_SIGNATURE],
            from_new_implementation=new_impl,
        )

    def verify(self, qr_private_key: ec.EllipticCurvePrivateKey, handshake_hash: bytes) -> None:
        """Raise ProtocolError unless the signature binds this info to this handshake."""
        if not verify_pairing_signature(
            qr_private_key, self.authenticator_public_key, handshake_hash, self.handshake_signature
        ):
            raise ProtocolError(
                "linking info signature is invalid: the phone was not linked",
                reason=ProtocolReason.AUTHENTICATION_FAILED,
            )


def compute_pairing_signature(
    identity: ec.EllipticCurvePrivateKey, peer_public_key: bytes, handshake_hash: bytes
) -> bytes:
    """HMAC-SHA256(key = ECDH_x(identity, peer), msg = handshake hash): 32 bytes."""
    identity = require_p256_private_key(identity, "identity key")
    peer = load_point(peer_public_key, "peer public key")
    handshake_hash = require_bytes(handshake_hash, "handshake hash")
    return hmac.new(ecdh(identity, peer), handshake_hash, hashlib.sha256).digest()


def verify_pairing_signature(
    identity: ec.EllipticCurvePrivateKey,
    peer_public_key: bytes,
    handshake_hash: bytes,
    signature: bytes,
) -> bool:
    """Constant-time check of a pairing signature; False for any malformed input."""
    try:
        expected = compute_pairing_signature(identity, peer_public_key, handshake_hash)
        signature = require_bytes(signature, "signature")
    except ProtocolError:
        return False
    return len(signature) == _SIGNATURE_SIZE and hmac.compare_digest(expected, signature)
