"""One stored passkey and its JSON form in the credential store file.

Entries written before extensions existed have no `prfSecret`, `credProtect` or `largeBlob`:
they still load, as credentials with PRF unavailable, credProtect level 1 and no blob.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.utils import websafe_decode, websafe_encode

from hybrid.authenticator.extensions import PRF_SECRET_LENGTH, CredProtect, LargeBlob

MAX_SIGN_COUNT: Final = 0xFFFFFFFF


@dataclass(frozen=True)
class StoredCredential:
    """One P-256 credential; secrets stay out of repr and comparisons.

    `prf_secret` is None for credentials from older stores (PRF unavailable for them).
    `discoverable` is False only for a security key's non-resident credentials (rk not asked):
    they are used by ID alone. The phone's passkeys are always discoverable.
    """

    credential_id: bytes
    rp_id: str
    user_id: bytes
    user_name: str | None
    user_display_name: str | None
    private_key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)
    sign_count: int = 0
    created: int = 0  # creation order, so "most recent" needs no clock
    prf_secret: bytes | None = field(default=None, repr=False, compare=False)
    cred_protect: CredProtect = CredProtect.UV_OPTIONAL
    large_blob: LargeBlob | None = field(default=None, repr=False)
    discoverable: bool = True

    def to_json(self) -> dict[str, Any]:
        der = self.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        entry: dict[str, Any] = {
            "credentialId": websafe_encode(self.credential_id),
            "rpId": self.rp_id,
            "userId": websafe_encode(self.user_id),
            "userName": self.user_name,
            "userDisplayName": self.user_display_name,
            "privateKey": websafe_encode(der),
            "signCount": self.sign_count,
            "created": self.created,
            "credProtect": int(self.cred_protect),
        }
        if self.prf_secret is not None:
            entry["prfSecret"] = websafe_encode(self.prf_secret)
        if self.large_blob is not None:
            entry["largeBlob"] = self.large_blob.to_json()
        if not self.discoverable:
            entry["discoverable"] = False
        return entry

    @classmethod
    def from_json(cls, data: Any) -> StoredCredential:
        """Parse one stored entry; raises ValueError/TypeError/KeyError on anything odd."""
        if not isinstance(data, dict):
            raise TypeError("credential entry is not an object")
        key = serialization.load_der_private_key(websafe_decode(_str(data, "privateKey")), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise ValueError("private key is not a P-256 key")
        count, created = data["signCount"], data["created"]
        if not _is_uint(count, MAX_SIGN_COUNT) or not _is_uint(created, 2**63):
            raise ValueError("bad signCount or created")
        level = data.get("credProtect", int(CredProtect.UV_OPTIONAL))
        if not _is_uint(level, int(CredProtect.UV_REQUIRED)):
            raise ValueError("bad credProtect")
        secret = _optional_str(data, "prfSecret")
        prf_secret = None if secret is None else websafe_decode(secret)
        if prf_secret is not None and len(prf_secret) != PRF_SECRET_LENGTH:
            raise ValueError("prfSecret is not 32 bytes")
        blob = data.get("largeBlob")
        discoverable = data.get("discoverable", True)
        if not isinstance(discoverable, bool):
            raise TypeError("discoverable is not a boolean")
        return cls(
            credential_id=websafe_decode(_str(data, "credentialId")),
            rp_id=_str(data, "rpId"),
            user_id=websafe_decode(_str(data, "userId")),
            user_name=_optional_str(data, "userName"),
            user_display_name=_optional_str(data, "userDisplayName"),
            private_key=key,
            sign_count=count,
            created=created,
            prf_secret=prf_secret,
            cred_protect=CredProtect(level),  # ValueError for 0
            large_blob=None if blob is None else LargeBlob.from_json(blob),
            discoverable=discoverable,
        )


def _is_uint(value: object, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def _str(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value
