"""WebAuthn extensions over hybrid, desktop side: prf, credProtect, largeBlob (and credProps).

Three steps, as Chromium takes them with a hybrid phone:
1. `parse_*_extensions` validate the site's JSON before any QR code is shown (`InvalidOptions`);
   unknown extensions are ignored, as browsers do.
2. `*_ctap_extensions` build the CTAP extension map (request key 6 / 4) from the phone's getInfo:
   an extension goes only to a phone that lists it; a demand it cannot meet (enforced
   credProtect, largeBlob "required") raises `PhoneLacksExtension` before anything is sent.
3. `*_client_outputs` turn unsigned extension outputs (response key 6 / 8) into the
   `clientExtensionResults` JSON a browser's `getClientExtensionResults()` would give.
The byte encodings (PRF salts, compressed blobs) live in `hybrid.webauthn.extension_codec`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from fido2.ctap2.base import Info
from fido2.ctap2.extensions import CredProtectExtension
from fido2.utils import websafe_decode

from hybrid.errors import PhoneLacksFeature
from hybrid.webauthn.errors import InvalidOptions
from hybrid.webauthn.extension_codec import MAX_BLOB_ORIGINAL_SIZE as MAX_BLOB_ORIGINAL_SIZE
from hybrid.webauthn.extension_codec import PRF_SALT_PREFIX as PRF_SALT_PREFIX
from hybrid.webauthn.extension_codec import compress_blob as compress_blob
from hybrid.webauthn.extension_codec import decompress_blob as decompress_blob
from hybrid.webauthn.extension_codec import prf_salt as prf_salt
from hybrid.webauthn.extension_outputs import PRF_OUTPUT_LENGTH as PRF_OUTPUT_LENGTH
from hybrid.webauthn.extension_outputs import output_map, prf_results, read_blob, unsigned_bool

logger = logging.getLogger(__name__)

PRF = "prf"
CRED_PROTECT = "credProtect"
LARGE_BLOB = "largeBlob"
CRED_PROPS = "credProps"

_FIX = "fix the extensions the site sent, or report it to the site"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_POLICY = CredProtectExtension.POLICY
_ENFORCE = "enforceCredentialProtectionPolicy"
_UV_REQUIRED = _POLICY.str2int(_POLICY.REQUIRED.value)


class LargeBlobSupport(Enum):
    """`largeBlob.support` at registration; Chromium treats unknown values as "preferred"."""

    REQUIRED = "required"
    PREFERRED = "preferred"


class PhoneLacksExtension(PhoneLacksFeature):
    """The site demands an extension the phone does not offer; `extension` names it."""

    def __init__(self, extension: str) -> None:
        self.extension = extension
        super().__init__(
            extension,
            f"The site requires the {extension} extension, which this phone does not support: "
            "use another phone or a security key that supports it.",
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
    """Validated extension inputs of a create() call; `cred_protect` is the CTAP level 1-3.

    `cred_protect_is_default`: the site set no policy and the level is Chromium's default for
    passkeys, which is adjusted to what the phone can verify when the request is built.
    """

    cred_props: bool = False
    prf: PrfInputs | None = None
    cred_protect: int | None = None
    enforce_cred_protect: bool = False
    large_blob: LargeBlobSupport | None = None
    cred_protect_is_default: bool = False

    @property
    def requires_user_verification(self) -> bool:
        """The site asked for a credential only usable with UV ("userVerificationRequired"), so
        it must be made with UV: the request's userVerification is raised to "required", as
        Chromium does, whatever the site set (not for the default level, which is only ever
        sent with `uv`)."""
        return self.cred_protect == _UV_REQUIRED and not self.cred_protect_is_default


@dataclass(frozen=True)
class AuthenticationExtensions:
    """Validated extension inputs of a get() call; `large_blob_write` is uncompressed."""

    prf: PrfInputs | None = None
    large_blob_read: bool = False
    large_blob_write: bytes | None = field(default=None, repr=False)


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


def _cred_protect(extensions: Mapping[str, Any], resident_key: str | None) -> int:
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
    return level  # level 3 with userVerification below "required": see requires_user_verification


def _default_cred_protect(resident_key: str | None, uv: str | None) -> int | None:
    """Chromium's level for passkeys when the site sets none (content/browser/webauth);
    `registration_ctap_extensions` lowers it for a phone that cannot verify its user."""
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
        level: int | None = _cred_protect(extensions, resident_key)
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
    default = level is not None and extensions.get("credentialProtectionPolicy") is None
    return RegistrationExtensions(cred_props, prf, level, enforce, large_blob, default)


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


def phone_verifies_user(info: Info | Iterable[str]) -> bool:
    """Whether the phone's getInfo says it can verify its user (option `uv` true)."""
    return isinstance(info, Info) and info.options.get("uv") is True


def _cred_protect_for(
    extensions: RegistrationExtensions, info: Info | Iterable[str], user_verification: bool
) -> int | None:
    """The level to send: the site's own, or the default made to fit this phone.

    Level 3 by default only when the request carries `uv` (as Chromium); a phone that cannot
    verify gets no default at all, because levels 2 and 3 would hide the passkey from the
    discoverable sign-in the site asked for.
    """
    level = extensions.cred_protect
    if level is None or not extensions.cred_protect_is_default:
        return level
    if not phone_verifies_user(info):
        return None
    return level if user_verification else min(level, 2)


def registration_ctap_extensions(
    extensions: RegistrationExtensions,
    info: Info | Iterable[str],
    *,
    resident_key: bool,
    user_verification: bool = False,
) -> dict[str, Any]:
    """makeCredential key 6 for this phone (empty: send no key 6); `resident_key` = "rk" sent,
    `user_verification` = "uv" sent."""
    offered = phone_extensions(info)
    ctap: dict[str, Any] = {}
    if extensions.prf is not None and PRF in offered:
        ctap[PRF] = {"eval": extensions.prf.eval.to_ctap()} if extensions.prf.eval else {}
    cred_protect = _cred_protect_for(extensions, info, user_verification)
    if cred_protect is not None:
        if CRED_PROTECT in offered:
            ctap[CRED_PROTECT] = cred_protect
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


def registration_client_outputs(
    extensions: RegistrationExtensions, unsigned: Any, *, resident_key: bool
) -> dict[str, Any]:
    """create()'s clientExtensionResults from response key 6 (or None); `resident_key`: rk sent."""
    results: dict[str, Any] = {}
    if extensions.cred_props:
        results[CRED_PROPS] = {"rk": True} if resident_key else {}
    prf = output_map(unsigned, PRF)
    if extensions.prf is not None:
        entry: dict[str, Any] = {"enabled": unsigned_bool(prf, "enabled", "prf enabled")}
        if prf is not None and prf.get("results") is not None and extensions.prf.eval:
            entry["results"] = prf_results(prf["results"])
        results[PRF] = entry
    blob = output_map(unsigned, LARGE_BLOB)
    if extensions.large_blob is not None:
        supported = unsigned_bool(blob, "supported", "largeBlob supported")
        results[LARGE_BLOB] = {"supported": supported}
    return results


def authentication_client_outputs(
    extensions: AuthenticationExtensions, unsigned: Any
) -> dict[str, Any]:
    """clientExtensionResults of get(); `unsigned` is getAssertion response key 8 (or None)."""
    results: dict[str, Any] = {}
    prf = output_map(unsigned, PRF)
    if extensions.prf is not None:
        entry: dict[str, Any] = {}
        if prf is not None and prf.get("results") is not None:
            entry["results"] = prf_results(prf["results"])
        results[PRF] = entry
    blob = output_map(unsigned, LARGE_BLOB)
    if extensions.large_blob_read:
        data = read_blob(blob) if blob else None
        results[LARGE_BLOB] = {} if data is None else {"blob": data}
    elif extensions.large_blob_write is not None:
        written = unsigned_bool(blob, "written", "largeBlob written")
        results[LARGE_BLOB] = {"written": written}
    return results
