"""WebAuthn extensions over hybrid, desktop side: prf, credProtect, largeBlob (and credProps).

Three steps, as Chromium takes them with a hybrid phone:
1. `parse_*_extensions` validate the site's JSON before any QR code is shown (`InvalidOptions`);
   unknown extensions are ignored, as browsers do.
2. `*_ctap_extensions` build the CTAP extension map (request key 6 / 4) from the phone's getInfo:
   an extension goes only to a phone that lists it; a demand it cannot meet (enforced
   credProtect, largeBlob "required") raises `PhoneLacksExtension` before anything is sent.
3. `*_client_outputs` turn unsigned extension outputs (response key 6 / 8) into the
   `clientExtensionResults` JSON a browser's `getClientExtensionResults()` would give.
PRF inputs become salts here (`SHA-256("WebAuthn PRF" || 0x00 || input)`); large blobs travel
raw-DEFLATE compressed (RFC 1951).
"""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from fido2.ctap2.base import Info
from fido2.ctap2.extensions import CredProtectExtension
from fido2.utils import websafe_decode, websafe_encode

from hybrid.errors import HybridError, ProtocolError
from hybrid.webauthn.errors import InvalidOptions

logger = logging.getLogger(__name__)

PRF = "prf"
CRED_PROTECT = "credProtect"
LARGE_BLOB = "largeBlob"
CRED_PROPS = "credProps"
PRF_SALT_PREFIX = b"WebAuthn PRF\x00"
PRF_OUTPUT_LENGTH = 32
#: Largest inflated blob either side accepts; bounds memory for a hostile originalSize.
MAX_BLOB_ORIGINAL_SIZE = 1 << 20

_FIX = "fix the extensions the site sent, or report it to the site"
_RETRY = "try again; if it keeps happening, use another phone or security key"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_POLICY = CredProtectExtension.POLICY
_ENFORCE = "enforceCredentialProtectionPolicy"


class LargeBlobSupport(Enum):
    """`largeBlob.support` at registration; Chromium treats unknown values as "preferred"."""

    REQUIRED = "required"
    PREFERRED = "preferred"


class PhoneLacksExtension(HybridError):
    """The site demands an extension the phone does not offer; `extension` names it."""

    def __init__(self, extension: str) -> None:
        self.extension = extension
        super().__init__(
            f"The site requires the {extension} extension, which this phone does not support: "
            "use another phone or a security key that supports it."
        )


@dataclass(frozen=True)
class PrfValues:
    """One PRF evaluation point pair as the site gave it (raw inputs, not yet hashed)."""

    first: bytes
    second: bytes | None = None

    def to_ctap(self) -> dict[str, bytes]:
        """The salts the phone evaluates: each input hashed with the WebAuthn PRF prefix."""
        salts = {"first": prf_salt(self.first)}
        if self.second is not None:
            salts["second"] = prf_salt(self.second)
        return salts


@dataclass(frozen=True)
class PrfInputs:
    """`extensions.prf`; `by_credential` is sorted by credential ID (no duplicates)."""

    eval: PrfValues | None = None
    by_credential: tuple[tuple[bytes, PrfValues], ...] = ()


@dataclass(frozen=True)
class RegistrationExtensions:
    """Validated extension inputs of a create() call; `cred_protect` is the CTAP level 1-3."""

    cred_props: bool = False
    prf: PrfInputs | None = None
    cred_protect: int | None = None
    enforce_cred_protect: bool = False
    large_blob: LargeBlobSupport | None = None


@dataclass(frozen=True)
class AuthenticationExtensions:
    """Validated extension inputs of a get() call; `large_blob_write` is uncompressed."""

    prf: PrfInputs | None = None
    large_blob_read: bool = False
    large_blob_write: bytes | None = field(default=None, repr=False)


def prf_salt(value: bytes) -> bytes:
    """The 32-byte salt a WebAuthn PRF input becomes (WebAuthn L3 §10.1.4)."""
    return hashlib.sha256(PRF_SALT_PREFIX + value).digest()


def compress_blob(data: bytes) -> bytes:
    """Raw DEFLATE (RFC 1951, no zlib header), the largeBlob wire form."""
    compressor = zlib.compressobj(level=9, wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def decompress_blob(data: bytes, original_size: int) -> bytes | None:
    """Inflate a raw-DEFLATE blob; None unless it is one complete stream of `original_size`."""
    if not 0 <= original_size <= MAX_BLOB_ORIGINAL_SIZE:
        return None
    inflater = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, original_size + 1)
    except zlib.error:
        return None
    complete = inflater.eof and not inflater.unconsumed_tail and not inflater.unused_data
    return out if complete and len(out) == original_size else None


def _invalid(what: str) -> InvalidOptions:
    return InvalidOptions(f"The extension input {what}: {_FIX}.")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _invalid(f"'{where}' must be a JSON object")
    return value


def _flag(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise _invalid(f"'{where}' must be true or false")
    return value is True


def _b64url(value: Any, where: str) -> bytes:
    """Strict base64url (padding tolerated), unlike `base64` which skips stray characters."""
    text = value.rstrip("=") if isinstance(value, str) else None
    if text is None or not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise _invalid(f"'{where}' must be base64url")
    return websafe_decode(text)


def _prf_values(value: Any, where: str) -> PrfValues:
    values = _mapping(value, where)
    if "first" not in values:
        raise _invalid(f"'{where}' needs 'first'")
    second = values.get("second")
    return PrfValues(
        _b64url(values["first"], f"{where}.first"),
        None if second is None else _b64url(second, f"{where}.second"),
    )


def _prf(value: Any, allow_ids: Sequence[bytes] | None) -> PrfInputs:
    """`allow_ids` None means a create() call, where `evalByCredential` is not allowed."""
    prf = _mapping(value, "prf")
    evaluate = None if prf.get("eval") is None else _prf_values(prf["eval"], "prf.eval")
    by_credential: dict[bytes, PrfValues] = {}
    if prf.get("evalByCredential") is not None:
        entries = _mapping(prf["evalByCredential"], "prf.evalByCredential")
        if allow_ids is None:
            raise _invalid("'prf.evalByCredential' is not allowed when registering")
        if entries and not allow_ids:
            raise _invalid("'prf.evalByCredential' needs allowCredentials")
        for key, entry in entries.items():
            where = f"prf.evalByCredential[{key!r}]"
            credential_id = _b64url(key, where)
            if not credential_id or credential_id not in allow_ids:
                raise _invalid(f"{where} names no credential in allowCredentials")
            by_credential[credential_id] = _prf_values(entry, where)
    return PrfInputs(evaluate, tuple(sorted(by_credential.items())))


def _cred_protect(extensions: Mapping[str, Any], resident_key: str | None, uv: str | None) -> int:
    try:
        level = _POLICY.str2int(extensions["credentialProtectionPolicy"])
    except (ValueError, TypeError) as exc:
        allowed = ", ".join(p.value for p in _POLICY)
        raise _invalid(f"'credentialProtectionPolicy' must be one of {allowed}") from exc
    # Chromium refuses these combinations as inconsistent before asking any authenticator.
    if level == 1 and extensions.get(_ENFORCE) is True:
        raise _invalid("'userVerificationOptional' cannot be enforced (it is the default)")
    if level == 1 and resident_key != "required":
        raise _invalid("'userVerificationOptional' needs residentKey 'required'")
    if level == 3 and uv != "required":
        raise _invalid("'userVerificationRequired' needs userVerification 'required'")
    return level


def _default_cred_protect(resident_key: str | None, uv: str | None) -> int | None:
    """Chromium's level for passkeys when the site sets none (content/browser/webauth)."""
    if resident_key == "required" and (uv or "preferred") == "preferred":
        return 3
    return 2 if resident_key in ("required", "preferred") else None


def parse_registration_extensions(
    extensions: Any, *, resident_key: str | None = None, user_verification: str | None = None
) -> RegistrationExtensions:
    """Validate create() extension inputs; `resident_key`/`user_verification` are the site's
    `authenticatorSelection` strings (None when absent), needed for credProtect's rules."""
    if extensions is None:
        return RegistrationExtensions()
    extensions = _mapping(extensions, "extensions")
    cred_props = _flag(extensions, CRED_PROPS, CRED_PROPS)
    prf = None if extensions.get(PRF) is None else _prf(extensions[PRF], None)
    enforce = _flag(extensions, _ENFORCE, _ENFORCE)
    if extensions.get("credentialProtectionPolicy") is not None:
        level: int | None = _cred_protect(extensions, resident_key, user_verification)
    elif enforce:
        raise _invalid(f"'{_ENFORCE}' needs a 'credentialProtectionPolicy'")
    else:
        level = _default_cred_protect(resident_key, user_verification)
    large_blob = None
    if extensions.get(LARGE_BLOB) is not None:
        blob = _mapping(extensions[LARGE_BLOB], LARGE_BLOB)
        if blob.get("read") is not None or blob.get("write") is not None:
            raise _invalid("'largeBlob' may not read or write when registering")
        if not isinstance(blob.get("support", ""), str):
            raise _invalid("'largeBlob.support' must be a string")
        required = blob.get("support") == LargeBlobSupport.REQUIRED.value
        large_blob = LargeBlobSupport.REQUIRED if required else LargeBlobSupport.PREFERRED
    return RegistrationExtensions(cred_props, prf, level, enforce, large_blob)


def parse_authentication_extensions(
    extensions: Any, allow_credentials: Sequence[bytes] = ()
) -> AuthenticationExtensions:
    """Validate get() extension inputs against the request's allowCredentials IDs."""
    if extensions is None:
        return AuthenticationExtensions()
    extensions = _mapping(extensions, "extensions")
    prf = None if extensions.get(PRF) is None else _prf(extensions[PRF], allow_credentials)
    read, write = False, None
    if extensions.get(LARGE_BLOB) is not None:
        blob = _mapping(extensions[LARGE_BLOB], LARGE_BLOB)
        if blob.get("support") is not None:
            raise _invalid("'largeBlob.support' is only for registering")
        read = _flag(blob, "read", "largeBlob.read")
        if blob.get("write") is not None:
            write = _b64url(blob["write"], "largeBlob.write")
            if read:
                raise _invalid("'largeBlob' may not read and write at once")
            if len(allow_credentials) != 1:
                raise _invalid("'largeBlob.write' needs exactly one credential in allowCredentials")
    return AuthenticationExtensions(prf, read, write)


def phone_extensions(info: Info | Iterable[str]) -> frozenset[str]:
    """The extension names a phone lists in getInfo (key 2)."""
    return frozenset(info.extensions if isinstance(info, Info) else info)


def registration_ctap_extensions(
    extensions: RegistrationExtensions, info: Info | Iterable[str], *, resident_key: bool
) -> dict[str, Any]:
    """makeCredential key 6 for this phone (empty: send no key 6); `resident_key` = "rk" sent."""
    offered = phone_extensions(info)
    ctap: dict[str, Any] = {}
    if extensions.prf is not None and PRF in offered:
        ctap[PRF] = {"eval": extensions.prf.eval.to_ctap()} if extensions.prf.eval else {}
    if extensions.cred_protect is not None:
        if CRED_PROTECT in offered:
            ctap[CRED_PROTECT] = extensions.cred_protect
        elif extensions.enforce_cred_protect:
            raise PhoneLacksExtension(CRED_PROTECT)
    if extensions.large_blob is not None:
        if LARGE_BLOB in offered and resident_key:
            ctap[LARGE_BLOB] = {"support": extensions.large_blob.value}
        elif extensions.large_blob is LargeBlobSupport.REQUIRED:
            raise PhoneLacksExtension(LARGE_BLOB)
    return ctap


def authentication_ctap_extensions(
    extensions: AuthenticationExtensions, info: Info | Iterable[str]
) -> dict[str, Any]:
    """getAssertion key 4 for this phone (empty: send no key 4)."""
    offered = phone_extensions(info)
    ctap: dict[str, Any] = {}
    prf = extensions.prf
    if prf is not None and PRF in offered and (prf.eval or prf.by_credential):
        entry: dict[str, Any] = {}
        if prf.eval is not None:
            entry["eval"] = prf.eval.to_ctap()
        if prf.by_credential:
            entry["evalByCredential"] = {cid: v.to_ctap() for cid, v in prf.by_credential}
        ctap[PRF] = entry
    if LARGE_BLOB in offered:
        if extensions.large_blob_read:
            ctap[LARGE_BLOB] = {"read": True}
        elif extensions.large_blob_write is not None:
            data = extensions.large_blob_write
            ctap[LARGE_BLOB] = {"write": compress_blob(data), "originalSize": len(data)}
    return ctap


def _bad(what: str) -> ProtocolError:
    return ProtocolError(f"The phone's extension outputs are malformed ({what}): {_RETRY}.")


def _output_map(unsigned: Any, name: str) -> Mapping[Any, Any] | None:
    if unsigned is None:
        return None
    if not isinstance(unsigned, Mapping) or not all(isinstance(k, str) for k in unsigned):
        raise _bad("not a map of extension names")
    value = unsigned.get(name)
    if value is not None and not isinstance(value, Mapping):
        raise _bad(f"{name} is not a map")
    return value


def _prf_results(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _bad("prf results are not a map")
    wanted = [n for n in ("first", "second") if n == "first" or value.get(n) is not None]
    outputs = {
        n: v for n in wanted if isinstance(v := value.get(n), bytes) and len(v) == PRF_OUTPUT_LENGTH
    }
    if len(outputs) != len(wanted):
        raise _bad(f"prf results are not {PRF_OUTPUT_LENGTH} bytes each")
    return {name: websafe_encode(v) for name, v in outputs.items()}


def _unsigned_bool(value: Mapping[Any, Any] | None, key: str, what: str) -> bool:
    flag = False if value is None else value.get(key, False)
    if not isinstance(flag, bool):
        raise _bad(f"{what} is not a boolean")
    return flag


def registration_client_outputs(
    extensions: RegistrationExtensions, unsigned: Any, *, resident_key: bool
) -> dict[str, Any]:
    """create()'s clientExtensionResults from response key 6 (or None); `resident_key`: rk sent."""
    results: dict[str, Any] = {}
    if extensions.cred_props:
        results[CRED_PROPS] = {"rk": True} if resident_key else {}
    prf = _output_map(unsigned, PRF)
    if extensions.prf is not None:
        entry: dict[str, Any] = {"enabled": _unsigned_bool(prf, "enabled", "prf enabled")}
        if prf is not None and prf.get("results") is not None and extensions.prf.eval:
            entry["results"] = _prf_results(prf["results"])
        results[PRF] = entry
    blob = _output_map(unsigned, LARGE_BLOB)
    if extensions.large_blob is not None:
        supported = _unsigned_bool(blob, "supported", "largeBlob supported")
        results[LARGE_BLOB] = {"supported": supported}
    return results


def _read_blob(value: Mapping[Any, Any]) -> str | None:
    blob, size = value.get("blob"), value.get("originalSize")
    if not isinstance(blob, bytes) or not isinstance(size, int) or isinstance(size, bool):
        raise _bad("largeBlob needs 'blob' bytes and an 'originalSize'")
    data = decompress_blob(blob, size)
    if data is None:  # Chromium reports no blob when it does not inflate to originalSize
        logger.warning("the phone's large blob does not inflate to its originalSize")
        return None
    return websafe_encode(data)


def authentication_client_outputs(
    extensions: AuthenticationExtensions, unsigned: Any
) -> dict[str, Any]:
    """clientExtensionResults of get(); `unsigned` is getAssertion response key 8 (or None)."""
    results: dict[str, Any] = {}
    prf = _output_map(unsigned, PRF)
    if extensions.prf is not None:
        entry: dict[str, Any] = {}
        if prf is not None and prf.get("results") is not None:
            entry["results"] = _prf_results(prf["results"])
        results[PRF] = entry
    blob = _output_map(unsigned, LARGE_BLOB)
    if extensions.large_blob_read:
        data = _read_blob(blob) if blob else None
        results[LARGE_BLOB] = {} if data is None else {"blob": data}
    elif extensions.large_blob_write is not None:
        written = _unsigned_bool(blob, "written", "largeBlob written")
        results[LARGE_BLOB] = {"written": written}
    return results
