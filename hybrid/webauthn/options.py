"""Reading a site's WebAuthn Level 3 options JSON and checking its RP ID against the origin.

fido2's dataclasses do the parsing (base64url included); this module adds what a browser
checks first and turns every failure into an `InvalidOptions` that names the problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fido2.rpid import verify_rp_id
from fido2.webauthn import (
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
)

from hybrid.webauthn.errors import InvalidOptions, InvalidOrigin

MAX_USER_ID_LENGTH = 64

_Options = TypeVar(
    "_Options", PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions
)

_FIX = "fix the options the site sent, or report it to the site"


def _load(options: str | Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """JSON text or an already-parsed dict; a `{"publicKey": ...}` wrapper is unwrapped."""
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidOptions(f"The {what} are not valid JSON ({exc}): {_FIX}.") from exc
    if not isinstance(options, Mapping):
        raise InvalidOptions(f"The {what} must be a JSON object: {_FIX}.")
    inner = options.get("publicKey")
    return inner if isinstance(inner, Mapping) else options


def _require(data: Mapping[str, Any], path: str, kind: type, what: str) -> Any:
    value: Any = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        raise InvalidOptions(f"The {what} have no '{path}': {_FIX}.")
    if not isinstance(value, kind):
        raise InvalidOptions(f"In the {what}, '{path}' must be a {kind.__name__}: {_FIX}.")
    return value


def _from_dict(cls: type[_Options], data: Mapping[str, Any], what: str) -> _Options:
    try:
        return cls.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidOptions(f"The {what} are malformed ({exc}): {_FIX}.") from exc


def parse_creation_options(
    options: str | Mapping[str, Any],
) -> PublicKeyCredentialCreationOptions:
    """Parse PublicKeyCredentialCreationOptionsJSON (text or dict)."""
    what = "registration options"
    data = _load(options, what)
    _require(data, "challenge", str, what)
    _require(data, "rp", Mapping, what)
    _require(data, "rp.name", str, what)
    _require(data, "user", Mapping, what)
    _require(data, "user.id", str, what)
    _require(data, "pubKeyCredParams", list, what)
    parsed = _from_dict(PublicKeyCredentialCreationOptions, data, what)
    if not 0 < len(parsed.user.id) <= MAX_USER_ID_LENGTH:
        raise InvalidOptions(f"The user.id in the {what} must be 1 to 64 bytes: {_FIX}.")
    return parsed


def parse_request_options(
    options: str | Mapping[str, Any],
) -> PublicKeyCredentialRequestOptions:
    """Parse PublicKeyCredentialRequestOptionsJSON (text or dict)."""
    what = "sign-in options"
    data = _load(options, what)
    _require(data, "challenge", str, what)
    if data.get("rpId") is not None:
        _require(data, "rpId", str, what)
    return _from_dict(PublicKeyCredentialRequestOptions, data, what)


def normalize_origin(origin: str) -> tuple[str, str]:
    """Return (origin as `scheme://host[:port]`, host), refusing insecure or odd origins.

    WebAuthn needs a secure context: https, or http only on localhost.
    """
    try:
        parts = urlsplit(origin)
        host, port = parts.hostname, parts.port
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidOrigin(
            f"{origin!r} is not an origin: pass scheme://host[:port], e.g. https://example.com."
        ) from exc
    if (
        not host
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or (parts.username is not None)
    ):
        raise InvalidOrigin(
            f"{origin!r} is not an origin: pass scheme://host[:port] with no path, e.g. "
            "https://example.com."
        )
    local = host == "localhost" or host.endswith(".localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise InvalidOrigin(
            f"{origin!r} is not a secure origin: passkeys need https:// (http:// is allowed "
            "only for localhost)."
        )
    shown_host = f"[{host}]" if ":" in host else host
    normalized = f"{parts.scheme}://{shown_host}" + (f":{port}" if port is not None else "")
    return normalized, host


def effective_rp_id(rp_id: str | None, origin: str) -> str:
    """The RP ID to use: the site's, checked against the origin, or else the origin's host.

    Valid RP IDs are the origin's host or a registrable suffix of it (not a public suffix such
    as "com" or "co.uk"); fido2's public-suffix list decides the latter.
    """
    normalized, host = normalize_origin(origin)
    chosen = host if rp_id is None else rp_id
    if not verify_rp_id(chosen, normalized):
        raise InvalidOrigin(
            f"The RP ID {chosen!r} is not valid for the origin {normalized}: it must be the "
            "origin's host or a registrable suffix of it. Use the origin the site is served "
            "from, or fix the site's RP ID."
        )
    return chosen
