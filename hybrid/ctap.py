"""CTAP2 wire helpers shared by the desktop and the phone: key numbers, status codes, CBOR.

The one home of CTAP2's integer map keys (CTAP 2.1 §6), named, for builders and parsers alike.

Both sides meet CBOR from the other end of a tunnel, so decoding is strict (no tags, no
indefinite lengths, no duplicate keys, no trailing bytes, bounded depth) and every failure is a
`ProtocolError`. Status codes map to the `hybrid.errors` types an application can act on.
"""

from __future__ import annotations

import enum
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
from hybrid.protocol.cbor import cbor_decode
from hybrid.text import MAX_SITE_SHOWN, shown

#: CTAP2 status codes (CTAP 2.1 §8.2), fido2's enum under a name that says what it is.
CtapStatus = CtapError.ERR
#: CTAP2 command bytes (makeCredential 0x01, getAssertion 0x02, getInfo 0x04, ...).
CtapCommand = Ctap2.CMD


class MakeCredentialKey(enum.IntEnum):
    """authenticatorMakeCredential request parameters."""

    CLIENT_DATA_HASH = 0x01
    RP = 0x02
    USER = 0x03
    PUB_KEY_CRED_PARAMS = 0x04
    EXCLUDE_LIST = 0x05
    EXTENSIONS = 0x06
    OPTIONS = 0x07
    PIN_UV_AUTH_PARAM = 0x08
    PIN_UV_AUTH_PROTOCOL = 0x09
    ENTERPRISE_ATTESTATION = 0x0A


class GetAssertionKey(enum.IntEnum):
    """authenticatorGetAssertion request parameters."""

    RP_ID = 0x01
    CLIENT_DATA_HASH = 0x02
    ALLOW_LIST = 0x03
    EXTENSIONS = 0x04
    OPTIONS = 0x05
    PIN_UV_AUTH_PARAM = 0x06
    PIN_UV_AUTH_PROTOCOL = 0x07


class MakeCredentialResponseKey(enum.IntEnum):
    """authenticatorMakeCredential response members."""

    FMT = 0x01
    AUTH_DATA = 0x02
    ATT_STMT = 0x03
    EP_ATT = 0x04
    LARGE_BLOB_KEY = 0x05


class GetAssertionResponseKey(enum.IntEnum):
    """authenticatorGetAssertion response members."""

    CREDENTIAL = 0x01
    AUTH_DATA = 0x02
    SIGNATURE = 0x03
    USER = 0x04
    NUMBER_OF_CREDENTIALS = 0x05
    USER_SELECTED = 0x06
    LARGE_BLOB_KEY = 0x07


class InfoKey(enum.IntEnum):
    """authenticatorGetInfo response members."""

    VERSIONS = 0x01
    EXTENSIONS = 0x02
    AAGUID = 0x03
    OPTIONS = 0x04
    MAX_MSG_SIZE = 0x05
    PIN_UV_AUTH_PROTOCOLS = 0x06
    MAX_CREDENTIAL_COUNT_IN_LIST = 0x07
    MAX_CREDENTIAL_ID_LENGTH = 0x08
    TRANSPORTS = 0x09
    ALGORITHMS = 0x0A
    MAX_SERIALIZED_LARGE_BLOB_ARRAY = 0x0B
    FORCE_PIN_CHANGE = 0x0C
    MIN_PIN_LENGTH = 0x0D
    FIRMWARE_VERSION = 0x0E
    MAX_CRED_BLOB_LENGTH = 0x0F
    MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH = 0x10
    PREFERRED_PLATFORM_UV_ATTEMPTS = 0x11
    UV_MODALITY = 0x12
    CERTIFICATIONS = 0x13
    REMAINING_DISCOVERABLE_CREDENTIALS = 0x14


def command_name(command: int) -> str:
    """The CTAP command's name in camelCase ("getAssertion"), or "0x.." for others."""
    try:
        words = CtapCommand(command).name.lower().split("_")
    except ValueError:
        return f"0x{command:02x}"
    return words[0] + "".join(word.capitalize() for word in words[1:])


_CANCELLED = frozenset(
    {CtapStatus.OPERATION_DENIED, CtapStatus.NOT_ALLOWED, CtapStatus.USER_ACTION_TIMEOUT}
)


def status_name(status: int) -> str:
    """Return the CTAP name of a status code ("NO_CREDENTIALS"), or "UNKNOWN" for vendor codes."""
    try:
        return CtapStatus(status).name
    except ValueError:
        return "UNKNOWN"


def error_for_status(
    status: int, rp_id: str | None = None, *, device: str = "phone"
) -> CtapStatusError:
    """Build the `hybrid.errors` exception for a non-zero CTAP status from the authenticator.

    `rp_id` names the site in the message so the user knows which passkey is meant; `device`
    ("phone" or "security key") names the authenticator that answered.
    """
    site = shown(rp_id, "this site", limit=MAX_SITE_SHOWN)
    where = "the phone's password manager" if device == "phone" else "the security key"
    if status == CtapStatus.NO_CREDENTIALS:
        return NoCredentials(
            status,
            f"This {device} has no passkey for {site}: use the {device} or account where you "
            "created it, or register a new passkey.",
            rp_id=rp_id,
        )
    if status in _CANCELLED:
        return OperationDenied(
            status,
            f"Sign-in was cancelled on the {device}: try again and approve it on the {device}.",
            rp_id=rp_id,
        )
    if status == CtapStatus.CREDENTIAL_EXCLUDED:
        return CredentialExcluded(
            status,
            f"This {device} already has a passkey for {site}: sign in with it instead, or "
            f"remove it from {where} before registering again.",
            rp_id=rp_id,
        )
    if status == CtapStatus.UNSUPPORTED_ALGORITHM:
        return UnsupportedAlgorithm(
            status,
            f"This {device} supports none of the signature algorithms {site} accepts: ask the "
            "site to allow ES256 (-7), or use another authenticator.",
            rp_id=rp_id,
        )
    return CtapStatusError(
        status,
        f"The {device} answered with CTAP error 0x{status:02X} ({status_name(status)}): "
        "try again, or use another phone or security key.",
        rp_id=rp_id,
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
