"""CTAP2 wire helpers shared by the desktop and the phone: status codes and strict CBOR decoding.

Both sides meet CBOR from the other end of a tunnel, so decoding is strict (no tags, no
indefinite lengths, no duplicate keys, no trailing bytes, bounded depth) and every failure is a
`ProtocolError`. Status codes map to the `hybrid.errors` types an application can act on.
"""

from __future__ import annotations

from typing import Any

from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2

from hybrid.errors import (
    CredentialExcluded,
    CtapStatusError,
    NoCredentials,
    OperationDenied,
    ProtocolError,
    UnsupportedAlgorithm,
)
from hybrid.protocol._cbor import cbor_decode

#: CTAP2 status codes (CTAP 2.1 §8.2), fido2's enum under a name that says what it is.
CtapStatus = CtapError.ERR
#: CTAP2 command bytes (makeCredential 0x01, getAssertion 0x02, getInfo 0x04, ...).
CtapCommand = Ctap2.CMD

_CANCELLED = frozenset(
    {CtapStatus.OPERATION_DENIED, CtapStatus.NOT_ALLOWED, CtapStatus.USER_ACTION_TIMEOUT}
)


def status_name(status: int) -> str:
    """Return the CTAP name of a status code ("NO_CREDENTIALS"), or "UNKNOWN" for vendor codes."""
    try:
        return CtapStatus(status).name
    except ValueError:
        return "UNKNOWN"


def error_for_status(status: int, rp_id: str | None = None) -> CtapStatusError:
    """Build the `hybrid.errors` exception for a non-zero CTAP status from the phone.

    `rp_id` names the site in the message so the user knows which passkey is meant.
    """
    site = rp_id or "this site"
    if status == CtapStatus.NO_CREDENTIALS:
        return NoCredentials(
            status,
            f"This phone has no passkey for {site}: use the phone or account where you "
            "created it, or register a new passkey.",
        )
    if status in _CANCELLED:
        return OperationDenied(
            status, "Sign-in was cancelled on the phone: try again and approve it on the phone."
        )
    if status == CtapStatus.CREDENTIAL_EXCLUDED:
        return CredentialExcluded(
            status,
            f"This phone already has a passkey for {site}: sign in with it instead, or remove "
            "it from the phone's password manager before registering again.",
        )
    if status == CtapStatus.UNSUPPORTED_ALGORITHM:
        return UnsupportedAlgorithm(
            status,
            f"This phone supports none of the signature algorithms {site} accepts: ask the "
            "site to allow ES256 (-7), or use another authenticator.",
        )
    return CtapStatusError(
        status,
        f"The phone answered with CTAP error 0x{status:02X} ({status_name(status)}): try "
        "again, or use another phone or security key.",
    )


def raise_for_status(status: int, rp_id: str | None = None) -> None:
    """Raise `error_for_status(status, rp_id)` unless `status` is CTAP2_OK (0)."""
    if status != CtapStatus.SUCCESS:
        raise error_for_status(status, rp_id)


def decode_cbor(data: bytes) -> Any:
    """Decode exactly one CTAP2 CBOR item from `data`, or raise `ProtocolError`."""
    if not data:
        raise ProtocolError("Empty CBOR message: the other side sent nothing to decode.")
    return cbor_decode(
        data,
        "a CTAP2 message from the other side (try again; if it keeps happening, the peer "
        "is not speaking CTAP2)",
    )


def decode_cbor_map(data: bytes) -> dict[Any, Any]:
    """Decode a CBOR map (the shape of every CTAP2 request and response body)."""
    value = decode_cbor(data)
    if not isinstance(value, dict):
        raise ProtocolError(
            f"Expected a CBOR map but got {type(value).__name__}: the peer is not speaking "
            "CTAP2 correctly; try again or use another device."
        )
    return value
