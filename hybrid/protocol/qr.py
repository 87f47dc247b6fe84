"""The `FIDO:/` QR code: a digit-encoded CBOR map the desktop shows and the phone scans."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from hybrid.errors import ProtocolError
from hybrid.protocol.cbor import cbor_decode_map, cbor_encode, require_bytes, require_int
from hybrid.protocol.constants import (
    EID_KEY_SIZE,
    PSK_SIZE,
    QR_PREFIX,
    QR_SECRET_SIZE,
    TUNNEL_ID_SIZE,
)
from hybrid.protocol.digits import digits_decode, digits_encode
from hybrid.protocol.domains import ASSIGNED_DOMAINS
from hybrid.protocol.eid import Eid
from hybrid.protocol.keys import KeyPurpose, derive, load_point, point_bytes

#: Request-type hints understood; anything else is read as "ga" (as Chromium does).
KNOWN_REQUEST_TYPES = frozenset({"ga", "mc", "dcp", "dci"})

_KEY_PUBLIC_KEY = 0
_KEY_SECRET = 1
_KEY_KNOWN_DOMAINS = 2
_KEY_TIMESTAMP = 3
_KEY_SUPPORTS_LINKING = 4
_KEY_REQUEST_TYPE = 5
_UINT64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class QRCode:
    """Contents of a hybrid QR code (CBOR keys 0-5; key 6 and unknown keys are never written).

    `supports_linking` None means key 4 was absent (a v2.0 desktop); `to_url` always writes key 4
    because Android phones pick protocol v2.1 by its presence.
    """

    public_key: bytes
    secret: bytes = field(repr=False)
    known_domains: int = len(ASSIGNED_DOMAINS)
    timestamp: int | None = None
    supports_linking: bool | None = True
    request_type: str = "ga"

    def __post_init__(self) -> None:
        public_key = require_bytes(self.public_key, "QR public key (key 0)")
        object.__setattr__(self, "public_key", public_key)
        load_point(public_key, "QR key 0", compressed=True)  # on the curve, or ProtocolError
        secret = require_bytes(self.secret, "QR secret (key 1)")
        if len(secret) != QR_SECRET_SIZE:
            raise ProtocolError(f"QR secret (key 1) must be {QR_SECRET_SIZE} bytes")
        object.__setattr__(self, "secret", secret)
        require_int(self.known_domains, "QR key 2 (known domains)", maximum=_UINT64_MAX)
        if self.timestamp is not None:
            require_int(self.timestamp, "QR key 3 (timestamp)", maximum=_UINT64_MAX)
        if self.supports_linking is not None and not isinstance(self.supports_linking, bool):
            raise ProtocolError("QR key 4 (supports linking) must be a boolean")
        if not isinstance(self.request_type, str):
            raise ProtocolError("QR key 5 (request type) must be a string")
        if self.request_type not in KNOWN_REQUEST_TYPES:
            object.__setattr__(self, "request_type", "ga")

    @functools.cached_property
    def public_point(self) -> bytes:
        """The desktop's static key as a 65-byte uncompressed point (the Noise `s`)."""
        return point_bytes(load_point(self.public_key, "QR key 0", compressed=True))

    # The QR secret's key schedule: every key both roles derive from it, in one place.

    @functools.cached_property
    def eid_key(self) -> bytes:
        """The 64-byte key that encrypts and authenticates the phone's BLE advert."""
        return derive(self.secret, b"", KeyPurpose.EID_KEY, EID_KEY_SIZE)

    @functools.cached_property
    def tunnel_id(self) -> bytes:
        """The 16-byte tunnel ID both sides name to the tunnel server."""
        return derive(self.secret, b"", KeyPurpose.TUNNEL_ID, TUNNEL_ID_SIZE)

    def psk(self, eid: Eid) -> bytes:
        """The Noise pre-shared key, bound to the advert the phone sent (its plaintext EID)."""
        return derive(self.secret, eid.to_bytes(), KeyPurpose.PSK, PSK_SIZE)

    @classmethod
    def generate(
        cls, request_type: str = "ga", *, now: float | None = None
    ) -> tuple[QRCode, ec.EllipticCurvePrivateKey]:
        """A fresh QR code and its private key: one per ceremony."""
        private_key = ec.generate_private_key(ec.SECP256R1())
        qr = cls(
            public_key=point_bytes(private_key.public_key(), compressed=True),
            secret=os.urandom(QR_SECRET_SIZE),
            timestamp=int(time.time() if now is None else now),
            supports_linking=True,
            request_type=request_type,
        )
        return qr, private_key

    def to_cbor(self) -> bytes:
        """Canonical CBOR of keys 0-5 (3 only when a timestamp is set)."""
        contents: dict[int, Any] = {
            _KEY_PUBLIC_KEY: self.public_key,
            _KEY_SECRET: self.secret,
            _KEY_KNOWN_DOMAINS: self.known_domains,
            _KEY_SUPPORTS_LINKING: bool(self.supports_linking),
            _KEY_REQUEST_TYPE: self.request_type,
        }
        if self.timestamp is not None:
            contents[_KEY_TIMESTAMP] = self.timestamp
        return cbor_encode(contents)

    def to_url(self) -> str:
        """`FIDO:/` followed by the digit-encoded CBOR."""
        return QR_PREFIX + digits_encode(self.to_cbor())

    @classmethod
    def from_cbor(cls, data: bytes) -> QRCode:
        """Parse the CBOR map; unknown keys are ignored, known keys are type-checked."""
        contents = cbor_decode_map(data, "QR code")
        public_key = contents.get(_KEY_PUBLIC_KEY)
        secret = contents.get(_KEY_SECRET)
        if not isinstance(public_key, bytes) or not isinstance(secret, bytes):
            raise ProtocolError("QR code lacks its key (0) or secret (1)")
        request_type = contents.get(_KEY_REQUEST_TYPE, "ga")
        if not isinstance(request_type, str):
            raise ProtocolError("QR key 5 (request type) must be a string")
        return cls(
            public_key=public_key,
            secret=secret,
            known_domains=contents.get(_KEY_KNOWN_DOMAINS, 0),
            timestamp=contents.get(_KEY_TIMESTAMP),
            supports_linking=contents.get(_KEY_SUPPORTS_LINKING),
            request_type=request_type,
        )

    @classmethod
    def from_url(cls, url: str) -> QRCode:
        """Parse `FIDO:/<digits>` (prefix case-insensitive); ProtocolError on anything else."""
        if not isinstance(url, str):
            raise ProtocolError("a QR code URL must be a string")
        if url[: len(QR_PREFIX)].upper() != QR_PREFIX:
            raise ProtocolError(
                "this is not a passkey QR code (it must start with FIDO:/): scan the code "
                "that the computer shows for signing in with a phone"
            )
        payload = url[len(QR_PREFIX) :]
        if not payload:
            raise ProtocolError("the QR code is empty: scan it again")
        return cls.from_cbor(digits_decode(payload))
