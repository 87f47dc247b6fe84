"""WebAuthn extensions on the phone: prf, credProtect, largeBlob, as pure functions.

The phone answers them the way Chromium's desktop expects from a hybrid phone: PRF is
`HMAC-SHA256(credential's PRF secret, salt)` over salts the desktop already hashed; credProtect
levels 2 and 3 hide a credential from requests without UV (and, for 2, without an allowList);
largeBlob is the CTAP 2.2 extension form, raw-DEFLATE data kept with the credential.

Outputs go in the *unsigned* extension outputs (makeCredential key 6, getAssertion key 8);
credProtect's level is a signed output in the authenticator data, as CTAP 2.1 §12.1 says.
Every malformed input is a `CtapStatusError` with the CTAP status for it; nothing else escapes.

Large blobs: at least `MIN_LARGE_BLOB_BYTES` per credential is guaranteed; a blob over
`MAX_LARGE_BLOB_BYTES` compressed (or over `MAX_BLOB_ORIGINAL_SIZE` inflated) is not written,
but the assertion is still made and answers `written: false` (WebAuthn L3 §10.1.5: a write
that fails does not fail the sign-in); `originalSize` must equal the inflated size.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

from fido2.utils import websafe_decode, websafe_encode

from hybrid.authenticator.requests import _fail, _typed  # the request parser's own checks
from hybrid.ctap import CtapStatus
from hybrid.webauthn.extensions import (
    CRED_PROTECT,
    LARGE_BLOB,
    MAX_BLOB_ORIGINAL_SIZE,
    PRF,
    LargeBlobSupport,
    decompress_blob,
)

#: getInfo key 2: the extensions this phone answers.
SUPPORTED_EXTENSIONS: Final = (CRED_PROTECT, LARGE_BLOB, PRF)
PRF_SECRET_LENGTH: Final = 32
PRF_SALT_LENGTH: Final = 32
MIN_LARGE_BLOB_BYTES: Final = 1024
MAX_LARGE_BLOB_BYTES: Final = 2048


class CredProtect(IntEnum):
    """CTAP 2.1 credProtect levels, stored with each credential (1 when none was asked)."""

    UV_OPTIONAL = 1
    UV_OPTIONAL_WITH_CREDENTIAL_ID_LIST = 2
    UV_REQUIRED = 3


@dataclass(frozen=True)
class LargeBlob:
    """A credential's large blob as stored and sent: raw DEFLATE plus its inflated size."""

    compressed: bytes = field(repr=False)  # may hold secrets: kept out of logs
    original_size: int

    def to_json(self) -> dict[str, Any]:
        """The store's form: `{"data": base64url, "originalSize": n}`."""
        return {"data": websafe_encode(self.compressed), "originalSize": self.original_size}

    @classmethod
    def from_json(cls, data: Any) -> LargeBlob:
        """Parse and re-check a stored blob; raises ValueError/TypeError/KeyError if odd."""
        if not isinstance(data, dict) or not isinstance(data["data"], str):
            raise TypeError("largeBlob entry is not an object with base64url data")
        blob = cls(websafe_decode(data["data"]), data["originalSize"])
        if not isinstance(blob.original_size, int) or isinstance(blob.original_size, bool):
            raise TypeError("largeBlob originalSize is not an integer")
        if (
            len(blob.compressed) > MAX_LARGE_BLOB_BYTES
            or decompress_blob(blob.compressed, blob.original_size) is None
        ):
            raise ValueError("largeBlob does not inflate to its originalSize")
        return blob


@dataclass(frozen=True)
class PrfSalts:
    """Two 32-byte salts at most, already hashed by the desktop."""

    first: bytes
    second: bytes | None = None


@dataclass(frozen=True)
class MakeCredentialExtensions:
    """makeCredential key 6, validated; `large_blob` is None when not asked for."""

    prf: bool = False
    prf_eval: PrfSalts | None = None
    cred_protect: CredProtect | None = None
    large_blob: LargeBlobSupport | None = None


@dataclass(frozen=True)
class GetAssertionExtensions:
    """getAssertion key 4, validated; `large_blob_too_big`: a write over the storage limit
    was asked for (it is not kept, and answered with `written: false`)."""

    prf: bool = False
    prf_eval: PrfSalts | None = None
    prf_by_credential: dict[bytes, PrfSalts] = field(default_factory=dict)
    large_blob_read: bool = False
    large_blob_write: LargeBlob | None = None
    large_blob_too_big: bool = False

    def prf_salts_for(self, credential_id: bytes) -> PrfSalts | None:
        """The `evalByCredential` entry for this credential, else `eval` (WebAuthn §10.1.4)."""
        return self.prf_by_credential.get(credential_id, self.prf_eval)


@dataclass(frozen=True)
class RegistrationResult:
    """What to store with the new credential and what to answer.

    `authenticator_extensions` go in the authenticator data (set the ED flag when non-empty);
    `unsigned_outputs` are makeCredential response key 6 (leave the key out when empty).
    """

    cred_protect: CredProtect
    authenticator_extensions: dict[str, Any]
    unsigned_outputs: dict[str, Any] = field(repr=False)  # PRF results are key material


@dataclass(frozen=True)
class AssertionResult:
    """What to answer for one credential; `large_blob_to_store` must be persisted first;
    `large_blob_refused`: a write was asked for that is not stored (answered unwritten)."""

    prf_results: dict[str, bytes] | None = field(default=None, repr=False)  # key material
    large_blob_read: LargeBlob | None = None
    large_blob_to_store: LargeBlob | None = None
    large_blob_refused: bool = False

    def unsigned_outputs(self, *, stored: bool = False) -> dict[str, Any]:
        """getAssertion key 8 (leave the key out when empty); `stored`: the write was saved."""
        outputs: dict[str, Any] = {}
        if self.prf_results is not None:
            outputs[PRF] = {"results": self.prf_results}
        if self.large_blob_read is not None:
            blob = self.large_blob_read
            outputs[LARGE_BLOB] = {"blob": blob.compressed, "originalSize": blob.original_size}
        elif self.large_blob_to_store is not None or self.large_blob_refused:
            outputs[LARGE_BLOB] = {"written": stored and self.large_blob_to_store is not None}
        return outputs


def _extension_map(value: Any) -> dict[str, Any]:
    extensions = {} if value is None else _typed(value, dict, "extensions")
    for name in extensions:
        _typed(name, str, "extension name")
    return extensions


def _salt(value: Any, what: str) -> bytes:
    salt = _typed(value, bytes, what)
    if len(salt) != PRF_SALT_LENGTH:
        raise _fail(CtapStatus.INVALID_PARAMETER, f"{what} must be {PRF_SALT_LENGTH} bytes")
    return salt


def _salts(value: Any, what: str) -> PrfSalts:
    salts = _typed(value, dict, what)
    if "first" not in salts:
        raise _fail(CtapStatus.MISSING_PARAMETER, f"{what} has no first salt")
    second = salts.get("second")
    return PrfSalts(
        _salt(salts["first"], f"{what} first"),
        None if second is None else _salt(second, f"{what} second"),
    )


def _prf(
    extensions: dict[str, Any], *, by_credential: bool
) -> tuple[PrfSalts | None, dict[bytes, PrfSalts]]:
    prf = _typed(extensions[PRF], dict, "prf")
    evaluate = None if prf.get("eval") is None else _salts(prf["eval"], "prf eval")
    entries: dict[bytes, PrfSalts] = {}
    if prf.get("evalByCredential") is not None:
        if not by_credential:
            raise _fail(CtapStatus.INVALID_PARAMETER, "evalByCredential is for getAssertion")
        for credential_id, salts in _typed(
            prf["evalByCredential"], dict, "evalByCredential"
        ).items():
            if not _typed(credential_id, bytes, "evalByCredential key"):
                raise _fail(CtapStatus.INVALID_PARAMETER, "evalByCredential key is empty")
            entries[credential_id] = _salts(salts, "evalByCredential entry")
    return evaluate, entries


def parse_make_credential_extensions(value: Any) -> MakeCredentialExtensions:
    """Validate makeCredential key 6 (None when absent); unknown extensions are ignored."""
    extensions = _extension_map(value)
    prf, prf_eval = PRF in extensions, None
    if prf:
        prf_eval, _ = _prf(extensions, by_credential=False)
    level = None
    if CRED_PROTECT in extensions:
        try:
            level = CredProtect(_typed(extensions[CRED_PROTECT], int, "credProtect"))
        except ValueError as exc:
            raise _fail(CtapStatus.INVALID_PARAMETER, "credProtect must be 1, 2 or 3") from exc
    support = None
    if LARGE_BLOB in extensions:
        blob = _typed(extensions[LARGE_BLOB], dict, "largeBlob")
        if set(blob) - {"support"}:
            raise _fail(CtapStatus.INVALID_PARAMETER, "largeBlob may only ask for support here")
        if "support" in blob:
            try:
                support = LargeBlobSupport(_typed(blob["support"], str, "largeBlob support"))
            except ValueError as exc:
                raise _fail(CtapStatus.INVALID_PARAMETER, "unknown largeBlob support") from exc
    return MakeCredentialExtensions(prf, prf_eval, level, support)


def _large_blob_write(blob: dict[Any, Any]) -> LargeBlob | None:
    """The blob to store, or None when it is over the storage limit (not inflated at all)."""
    data = _typed(blob["write"], bytes, "largeBlob write")
    size = _typed(blob["originalSize"], int, "largeBlob originalSize")
    if size < 0:
        raise _fail(CtapStatus.INVALID_PARAMETER, "largeBlob originalSize is negative")
    if len(data) > MAX_LARGE_BLOB_BYTES or size > MAX_BLOB_ORIGINAL_SIZE:
        return None
    if decompress_blob(data, size) is None:
        raise _fail(CtapStatus.INVALID_PARAMETER, "largeBlob does not inflate to originalSize")
    return LargeBlob(data, size)


def parse_get_assertion_extensions(
    value: Any, allow_ids: tuple[bytes, ...] | None
) -> GetAssertionExtensions:
    """Validate getAssertion key 4 (None when absent) for a request with this allowList."""
    extensions = _extension_map(value)
    prf = PRF in extensions
    prf_eval, by_credential = _prf(extensions, by_credential=True) if prf else (None, {})
    read, write, too_big = False, None, False
    if LARGE_BLOB in extensions:
        blob = _typed(extensions[LARGE_BLOB], dict, "largeBlob")
        if set(blob) == {"read"}:
            read = _typed(blob["read"], bool, "largeBlob read")
        elif set(blob) == {"write", "originalSize"}:
            if allow_ids is None or len(allow_ids) != 1:
                raise _fail(CtapStatus.INVALID_PARAMETER, "largeBlob write needs one credential")
            write = _large_blob_write(blob)
            too_big = write is None
        else:
            raise _fail(CtapStatus.INVALID_PARAMETER, "largeBlob must read, or write with size")
    return GetAssertionExtensions(prf, prf_eval, by_credential, read, write, too_big)


def new_prf_secret() -> bytes:
    """The per-credential PRF key, made for every new credential so PRF works later too."""
    return secrets.token_bytes(PRF_SECRET_LENGTH)


def evaluate_prf(secret: bytes, salts: PrfSalts) -> dict[str, bytes]:
    """`{"first": HMAC-SHA256(secret, first), "second"?: ...}`, the wire form of PRF results."""
    results = {"first": hmac.new(secret, salts.first, hashlib.sha256).digest()}
    if salts.second is not None:
        results["second"] = hmac.new(secret, salts.second, hashlib.sha256).digest()
    return results


def register(extensions: MakeCredentialExtensions, prf_secret: bytes) -> RegistrationResult:
    """Outputs for a new credential whose PRF secret is `prf_secret` (see `new_prf_secret`)."""
    level = extensions.cred_protect or CredProtect.UV_OPTIONAL
    signed: dict[str, Any] = {}
    if extensions.cred_protect is not None:
        signed[CRED_PROTECT] = int(level)
    unsigned: dict[str, Any] = {}
    if extensions.prf:
        prf: dict[str, Any] = {"enabled": True}
        if extensions.prf_eval is not None:
            prf["results"] = evaluate_prf(prf_secret, extensions.prf_eval)
        unsigned[PRF] = prf
    if extensions.large_blob is not None:
        unsigned[LARGE_BLOB] = {"supported": True}  # every passkey here can hold a blob
    return RegistrationResult(level, signed, unsigned)


def credential_visible(level: int, *, allow_list: bool, uv: bool) -> bool:
    """May a credential of this credProtect level be used by a request?

    `allow_list`: the request named credentials; `uv`: the phone verified the user for it.
    Level 2 needs either, level 3 needs UV (CTAP 2.1 §12.1); hidden ones are NO_CREDENTIALS.
    """
    if level >= CredProtect.UV_REQUIRED:
        return uv
    if level == CredProtect.UV_OPTIONAL_WITH_CREDENTIAL_ID_LIST:
        return uv or allow_list
    return True


def assert_with(
    extensions: GetAssertionExtensions,
    credential_id: bytes,
    *,
    prf_secret: bytes | None,
    large_blob: LargeBlob | None,
) -> AssertionResult:
    """Outputs for the credential chosen for this assertion, with its stored secret and blob.

    PRF is `HMAC-SHA256(secret, salt)` whether or not the user was verified (the output is
    defined by the credential and salt alone); credentials without a secret (older stores)
    report none. A read of a credential without a blob answers nothing for largeBlob
    (Chromium then reports no blob).
    """
    prf_results = None
    salts = extensions.prf_salts_for(credential_id)
    if extensions.prf and salts is not None and prf_secret is not None:
        prf_results = evaluate_prf(prf_secret, salts)
    return AssertionResult(
        prf_results=prf_results,
        large_blob_read=large_blob if extensions.large_blob_read else None,
        large_blob_to_store=extensions.large_blob_write,
        large_blob_refused=extensions.large_blob_too_big,
    )
