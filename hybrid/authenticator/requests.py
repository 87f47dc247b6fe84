"""Parsing and validating the CTAP2 request maps the software authenticator answers.

Every problem becomes a `CtapStatusError` carrying the status CTAP 2.1 §6 prescribes, so the
command logic never sees a half-checked request and the desktop gets a precise reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from fido2.webauthn import PublicKeyCredentialType

from hybrid.ctap import CtapStatus
from hybrid.errors import CtapStatusError

PUBLIC_KEY = PublicKeyCredentialType.PUBLIC_KEY.value
MAX_USER_ID_LENGTH = 64  # WebAuthn user handles are at most 64 bytes
MAX_RP_ID_LENGTH = 255  # longer than any DNS name; stops store bloat
MAX_NAME_BYTES = 64  # CTAP 2.1 lets authenticators truncate user names to 64 bytes
CLIENT_DATA_HASH_LENGTH = 32  # SHA-256 of clientDataJSON

_T = TypeVar("_T")


@dataclass(frozen=True)
class MakeCredentialRequest:
    client_data_hash: bytes
    rp_id: str
    user_id: bytes
    user_name: str | None
    user_display_name: str | None
    algorithms: tuple[int, ...]  # in the RP's order of preference
    exclude_ids: tuple[bytes, ...]
    user_verification: bool = False  # options carried uv: true
    resident_key: bool = False  # options carried rk: true


@dataclass(frozen=True)
class GetAssertionRequest:
    rp_id: str
    client_data_hash: bytes
    # None: no (or an empty) allowList, so discoverable credentials. A non-empty list whose
    # entries are all of unknown types is an empty tuple and matches nothing.
    allow_ids: tuple[bytes, ...] | None
    user_verification: bool = False  # options carried uv: true
    user_presence: bool = True  # False: a silent (up: false) request a security key answers


def _fail(status: CtapStatus, why: str) -> CtapStatusError:
    return CtapStatusError(status, f"{status.name}: {why}")


def _typed(value: Any, kind: type[_T], what: str) -> _T:
    # bool is an int in Python but not in CBOR.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _fail(CtapStatus.CBOR_UNEXPECTED_TYPE, f"{what} must be {kind.__name__}")
    return value


def _required(params: dict[Any, Any], key: Any, kind: type[_T], what: str) -> _T:
    if key not in params:
        raise _fail(CtapStatus.MISSING_PARAMETER, f"{what} is missing")
    return _typed(params[key], kind, what)


def _optional(params: dict[Any, Any], key: Any, kind: type[_T], what: str) -> _T | None:
    return None if key not in params else _typed(params[key], kind, what)


def _rp_id(value: str) -> str:
    if not value or len(value) > MAX_RP_ID_LENGTH:
        raise _fail(CtapStatus.INVALID_PARAMETER, "rp id is empty or too long")
    return value


def _name(value: str | None) -> str | None:
    """Truncate to 64 UTF-8 bytes without splitting a character."""
    if value is None:
        return None
    return value.encode()[:MAX_NAME_BYTES].decode(errors="ignore")


def _client_data_hash(params: dict[Any, Any], key: int) -> bytes:
    value = _required(params, key, bytes, "clientDataHash")
    if len(value) != CLIENT_DATA_HASH_LENGTH:
        raise _fail(CtapStatus.INVALID_LENGTH, "clientDataHash must be 32 bytes")
    return value


def _descriptor_ids(value: Any, what: str) -> tuple[bytes, ...]:
    """Credential IDs of the public-key descriptors in an allow/exclude list."""
    ids = []
    for entry in _typed(value, list, what):
        descriptor = _typed(entry, dict, f"{what} entry")
        kind = _required(descriptor, "type", str, f"{what} entry type")
        credential_id = _required(descriptor, "id", bytes, f"{what} entry id")
        if kind == PUBLIC_KEY:
            ids.append(credential_id)
    return tuple(ids)


def _options(params: dict[Any, Any], key: int) -> dict[str, bool]:
    options = _optional(params, key, dict, "options") or {}
    for name, value in options.items():
        _typed(name, str, "option name")
        _typed(value, bool, f"option {name}")
    return options


def _reject_pin_and_extensions(params: dict[Any, Any], pin_key: int, ext_key: int) -> None:
    _optional(params, ext_key, dict, "extensions")  # extensions are ignored, but must be a map
    if pin_key in params:
        # No clientPin here: user verification is the phone's own check (the approve callback).
        raise _fail(CtapStatus.PIN_AUTH_INVALID, "pinUvAuthParam is not supported")


def parse_make_credential(params: dict[Any, Any]) -> MakeCredentialRequest:
    """Validate an authenticatorMakeCredential (0x01) parameter map."""
    client_data_hash = _client_data_hash(params, 1)
    rp = _required(params, 2, dict, "rp")
    user = _required(params, 3, dict, "user")
    cred_params = _required(params, 4, list, "pubKeyCredParams")
    exclude_ids = _descriptor_ids(params[5], "excludeList") if 5 in params else ()
    _reject_pin_and_extensions(params, 8, 6)
    options = _options(params, 7)
    if 10 in params:
        raise _fail(CtapStatus.INVALID_PARAMETER, "enterprise attestation is not supported")
    if options.get("up") is False:
        raise _fail(CtapStatus.INVALID_OPTION, "makeCredential always needs user presence")

    rp_id = _rp_id(_required(rp, "id", str, "rp id"))
    _optional(rp, "name", str, "rp name")
    user_id = _required(user, "id", bytes, "user id")
    if not 0 < len(user_id) <= MAX_USER_ID_LENGTH:
        raise _fail(CtapStatus.INVALID_PARAMETER, "user id must be 1 to 64 bytes")
    algorithms = []
    for entry in cred_params:
        parameter = _typed(entry, dict, "pubKeyCredParams entry")
        kind = _required(parameter, "type", str, "pubKeyCredParams type")
        alg = _required(parameter, "alg", int, "pubKeyCredParams alg")
        if kind == PUBLIC_KEY:
            algorithms.append(alg)
    return MakeCredentialRequest(
        client_data_hash=client_data_hash,
        rp_id=rp_id,
        user_id=user_id,
        user_name=_name(_optional(user, "name", str, "user name")),
        user_display_name=_name(_optional(user, "displayName", str, "user displayName")),
        algorithms=tuple(algorithms),
        exclude_ids=exclude_ids,
        user_verification=options.get("uv") is True,
        resident_key=options.get("rk") is True,
    )


def parse_get_assertion(
    params: dict[Any, Any], *, allow_silent: bool = False
) -> GetAssertionRequest:
    """Validate an authenticatorGetAssertion (0x02) parameter map.

    `allow_silent`: answer `up: false` (a USB key's pre-flight) instead of refusing it.
    """
    rp_id = _rp_id(_required(params, 1, str, "rpId"))
    client_data_hash = _client_data_hash(params, 2)
    allow_ids = None
    if 3 in params and params[3] != []:
        allow_ids = _descriptor_ids(params[3], "allowList")
    _reject_pin_and_extensions(params, 6, 4)
    options = _options(params, 5)
    if "rk" in options:
        raise _fail(CtapStatus.UNSUPPORTED_OPTION, "rk is not a getAssertion option")
    if options.get("up") is False and not allow_silent:
        # A silent probe would burn the phone's one command per tunnel and reveal passkeys
        # without the user's consent, so it is refused rather than answered.
        raise _fail(CtapStatus.UNSUPPORTED_OPTION, "silent (up=false) assertions are refused")
    return GetAssertionRequest(
        rp_id=rp_id,
        client_data_hash=client_data_hash,
        allow_ids=allow_ids,
        user_verification=options.get("uv") is True,
        user_presence=options.get("up") is not False,
    )
