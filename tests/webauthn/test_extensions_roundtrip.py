"""Extensions end to end: site JSON → desktop → CTAP over strict CBOR → phone → JSON results.

Hypothesis drives random PRF inputs, allow lists and large blobs through both modules; the
expected values are computed here from the WebAuthn definitions, not taken from either side.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fido2 import cbor
from fido2.ctap2.base import Info
from fido2.utils import websafe_decode, websafe_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.authenticator import extensions as phone
from hybrid.ctap import decode_cbor_map
from hybrid.webauthn import parse_creation_options, parse_request_options
from hybrid.webauthn.extensions import (
    authentication_client_outputs,
    authentication_ctap_extensions,
    parse_authentication_extensions,
    parse_registration_extensions,
    prf_salt,
    registration_client_outputs,
    registration_ctap_extensions,
)

OUR_PHONE = Info.from_dict(
    {
        1: ["FIDO_2_0", "FIDO_2_1"],
        2: list(phone.SUPPORTED_EXTENSIONS),
        3: bytes(16),
        4: {"uv": True},
    }
)
CRED_A = b"\x01" * 16
B64 = websafe_encode


def reg(extensions: Any, uv: str) -> Any:
    return parse_registration_extensions(extensions, resident_key="required", user_verification=uv)


def _over_the_wire(extensions: dict[str, Any], key: int) -> Any:
    """What the other side decodes: the map inside a CTAP body, strict CBOR both ways."""
    return decode_cbor_map(cbor.encode({key: extensions})).get(key)


def _hmac(secret: bytes, value: bytes) -> bytes:
    return hmac.new(secret, prf_salt(value), hashlib.sha256).digest()


def test_register_then_sign_in_with_prf_and_a_large_blob() -> None:
    create_json = {
        "prf": {"eval": {"first": B64(b"wrap key")}},
        "largeBlob": {"support": "required"},
    }
    parsed = reg(create_json, uv="required")
    request = registration_ctap_extensions(
        parsed, OUR_PHONE, resident_key=True, user_verification=True
    )
    on_phone = phone.parse_make_credential_extensions(_over_the_wire(request, 6))
    secret = phone.new_prf_secret()
    registered = phone.register(on_phone, secret)
    assert (
        registered.cred_protect is phone.CredProtect.UV_OPTIONAL_WITH_CREDENTIAL_ID_LIST
    )  # default
    results = registration_client_outputs(
        parsed, _over_the_wire(registered.unsigned_outputs, 6), resident_key=True
    )
    assert results["largeBlob"] == {"supported": True}
    assert results["prf"] == {
        "enabled": True,
        "results": {"first": B64(_hmac(secret, b"wrap key"))},
    }

    data = b"an encrypted vault key" * 10
    write = parse_authentication_extensions({"largeBlob": {"write": B64(data)}}, (CRED_A,))
    on_phone_write = phone.parse_get_assertion_extensions(
        _over_the_wire(authentication_ctap_extensions(write, OUR_PHONE), 4), (CRED_A,)
    )
    written = phone.assert_with(on_phone_write, CRED_A, prf_secret=secret, large_blob=None)
    stored = written.large_blob_to_store
    assert stored is not None
    outputs = _over_the_wire(written.unsigned_outputs(stored=True), 8)
    assert authentication_client_outputs(write, outputs) == {"largeBlob": {"written": True}}

    get_json = {"prf": {"eval": {"first": B64(b"wrap key")}}, "largeBlob": {"read": True}}
    read = parse_authentication_extensions(get_json, ())
    on_phone_read = phone.parse_get_assertion_extensions(
        _over_the_wire(authentication_ctap_extensions(read, OUR_PHONE), 4), None
    )
    answered = phone.assert_with(on_phone_read, CRED_A, prf_secret=secret, large_blob=stored)
    final = authentication_client_outputs(read, _over_the_wire(answered.unsigned_outputs(), 8))
    assert final == {
        "prf": {
            "results": {"first": results["prf"]["results"]["first"]}
        },  # same key as at creation
        "largeBlob": {"blob": B64(data)},
    }


json_bytes = st.binary(max_size=64)
prf_json = st.fixed_dictionaries({"first": json_bytes}, optional={"second": json_bytes})


@settings(max_examples=60, deadline=None)
@given(
    secret=st.binary(min_size=32, max_size=32),
    allow=st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=4, unique=True),
    default=st.none() | prf_json,
    per_credential=st.lists(prf_json, max_size=4),
    used=st.integers(min_value=0, max_value=3),
)
def test_prf_json_round_trip_through_both_sides(
    secret: bytes,
    allow: list[bytes],
    default: dict[str, bytes] | None,
    per_credential: list[dict[str, bytes]],
    used: int,
) -> None:
    by_credential = dict(zip(allow, per_credential, strict=False))
    prf: dict[str, Any] = {
        "evalByCredential": {
            B64(k): {n: B64(v) for n, v in e.items()} for k, e in by_credential.items()
        }
    }
    if default is not None:
        prf["eval"] = {n: B64(v) for n, v in default.items()}
    parsed = parse_authentication_extensions({"prf": prf}, tuple(allow))
    on_phone = phone.parse_get_assertion_extensions(
        _over_the_wire(authentication_ctap_extensions(parsed, OUR_PHONE), 4), tuple(allow)
    )
    credential = allow[used % len(allow)]
    answered = phone.assert_with(on_phone, credential, prf_secret=secret, large_blob=None)
    results = authentication_client_outputs(parsed, _over_the_wire(answered.unsigned_outputs(), 8))
    inputs = by_credential.get(credential, default)  # WebAuthn: evalByCredential wins over eval
    expected = (
        {} if inputs is None else {"results": {n: B64(_hmac(secret, v)) for n, v in inputs.items()}}
    )
    assert results == {"prf": expected}
    for name, value in expected.get("results", {}).items():
        assert len(websafe_decode(value)) == 32, name


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=1024))
def test_large_blob_round_trip_through_both_sides(data: bytes) -> None:
    write = parse_authentication_extensions({"largeBlob": {"write": B64(data)}}, (CRED_A,))
    on_phone = phone.parse_get_assertion_extensions(
        _over_the_wire(authentication_ctap_extensions(write, OUR_PHONE), 4), (CRED_A,)
    )
    stored = phone.assert_with(
        on_phone, CRED_A, prf_secret=None, large_blob=None
    ).large_blob_to_store
    read = parse_authentication_extensions({"largeBlob": {"read": True}}, (CRED_A,))
    on_phone_read = phone.parse_get_assertion_extensions(
        _over_the_wire(authentication_ctap_extensions(read, OUR_PHONE), 4), (CRED_A,)
    )
    answered = phone.assert_with(on_phone_read, CRED_A, prf_secret=None, large_blob=stored)
    assert authentication_client_outputs(read, _over_the_wire(answered.unsigned_outputs(), 8)) == {
        "largeBlob": {"blob": B64(data)}
    }


def test_wiring_from_parsed_site_options_as_prepare_will_do_it() -> None:
    """prepare.py's parsed options carry extensions as raw JSON and fido2's string enums."""
    options = parse_creation_options(
        {
            "rp": {"id": "example.com", "name": "Example"},
            "user": {"id": B64(b"user"), "name": "alice"},
            "challenge": B64(b"c" * 32),
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
            "authenticatorSelection": {"requireResidentKey": True},
            "extensions": {"credProps": True, "prf": {"eval": {"first": B64(b"k")}}},
        }
    )
    selection = options.authenticator_selection
    assert selection is not None
    parsed = parse_registration_extensions(
        options.extensions,
        resident_key=selection.resident_key,
        user_verification=selection.user_verification,
    )
    assert parsed.cred_props and parsed.cred_protect == 3  # Chromium's default for this case
    ctap = registration_ctap_extensions(
        parsed, OUR_PHONE, resident_key=True, user_verification=True
    )
    assert ctap == {"prf": {"eval": {"first": prf_salt(b"k")}}, "credProtect": 3}

    request = parse_request_options(
        {
            "challenge": B64(b"c" * 32),
            "allowCredentials": [{"type": "public-key", "id": B64(CRED_A)}],
            "extensions": {"prf": {"evalByCredential": {B64(CRED_A): {"first": B64(b"k")}}}},
        }
    )
    allow = tuple(bytes(d.id) for d in request.allow_credentials or ())
    get = parse_authentication_extensions(request.extensions, allow)
    assert authentication_ctap_extensions(get, OUR_PHONE) == {
        "prf": {"evalByCredential": {CRED_A: {"first": prf_salt(b"k")}}}
    }
