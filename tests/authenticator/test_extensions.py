"""Phone extensions: parsing with CTAP statuses, PRF evaluation, credProtect, largeBlob limits.

Cross-checked against python-fido2 (credProtect policy enum, largeBlob compression, getInfo
parsing) and against the desktop module end to end through strict CBOR.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.cose import ES256
from fido2.ctap2 import blob as fido2_blob
from fido2.ctap2.base import AttestationResponse, Info
from fido2.ctap2.extensions import CredProtectExtension
from fido2.utils import sha256, websafe_encode
from fido2.webauthn import Aaguid, AttestedCredentialData, AuthenticatorData
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.authenticator.extensions import (
    MAX_LARGE_BLOB_BYTES,
    MIN_LARGE_BLOB_BYTES,
    SUPPORTED_EXTENSIONS,
    CredProtect,
    GetAssertionExtensions,
    LargeBlob,
    MakeCredentialExtensions,
    PrfSalts,
    assert_with,
    credential_visible,
    evaluate_prf,
    new_prf_secret,
    parse_get_assertion_extensions,
    parse_make_credential_extensions,
    register,
)
from hybrid.ctap import CtapStatus, decode_cbor_map
from hybrid.errors import CtapStatusError
from hybrid.webauthn.extensions import (
    LargeBlobSupport,
    authentication_client_outputs,
    authentication_ctap_extensions,
    parse_authentication_extensions,
)

SALT_1, SALT_2 = b"\x11" * 32, b"\x22" * 32
CRED_A, CRED_B = b"\xaa" * 16, b"\xbb" * 16
SECRET = bytes(range(32))


def fido2_compress(data: bytes) -> bytes:
    """python-fido2's largeBlob compression (raw DEFLATE), an independent writer."""
    return cast(bytes, fido2_blob._compress(data))  # type: ignore[no-untyped-call]


def status_of(call: Any, *args: Any) -> int:
    with pytest.raises(CtapStatusError) as raised:
        call(*args)
    return raised.value.status


def test_get_info_lists_the_extensions_and_fido2_parses_them() -> None:
    info = Info.from_dict(
        decode_cbor_map(cbor.encode({1: ["FIDO_2_1"], 2: list(SUPPORTED_EXTENSIONS), 3: bytes(16)}))
    )
    assert set(info.extensions) == {"prf", "credProtect", "largeBlob"}


def test_cred_protect_levels_are_ctap_and_fido2_numbers() -> None:
    assert [int(level) for level in CredProtect] == [
        CredProtectExtension.POLICY.str2int(p.value) for p in CredProtectExtension.POLICY
    ]


# --- parsing ---------------------------------------------------------------------------------


def test_make_credential_inputs_parse() -> None:
    assert parse_make_credential_extensions(None) == MakeCredentialExtensions()
    assert parse_make_credential_extensions({"hmac-secret": True}) == MakeCredentialExtensions()
    parsed = parse_make_credential_extensions(
        {
            "prf": {"eval": {"first": SALT_1, "second": SALT_2}},
            "credProtect": 3,
            "largeBlob": {"support": "preferred"},
        }
    )
    assert parsed == MakeCredentialExtensions(
        True, PrfSalts(SALT_1, SALT_2), CredProtect.UV_REQUIRED, LargeBlobSupport.PREFERRED
    )
    assert parse_make_credential_extensions({"prf": {}}).prf


MAKE_CREDENTIAL_ERRORS: list[tuple[Any, CtapStatus]] = [
    ([], CtapStatus.CBOR_UNEXPECTED_TYPE),
    ({1: True}, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ({"prf": True}, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ({"prf": {"eval": {}}}, CtapStatus.MISSING_PARAMETER),
    ({"prf": {"eval": {"second": SALT_2}}}, CtapStatus.MISSING_PARAMETER),
    ({"prf": {"eval": {"first": SALT_1[:31]}}}, CtapStatus.INVALID_PARAMETER),
    ({"prf": {"eval": {"first": SALT_1 + b"\x00"}}}, CtapStatus.INVALID_PARAMETER),
    ({"prf": {"eval": {"first": SALT_1, "second": b""}}}, CtapStatus.INVALID_PARAMETER),
    ({"prf": {"eval": {"first": "salt"}}}, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ({"prf": {"eval": [SALT_1]}}, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ({"prf": {"evalByCredential": {CRED_A: {"first": SALT_1}}}}, CtapStatus.INVALID_PARAMETER),
    ({"credProtect": 0}, CtapStatus.INVALID_PARAMETER),
    ({"credProtect": 4}, CtapStatus.INVALID_PARAMETER),
    ({"credProtect": True}, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ({"credProtect": "userVerificationRequired"}, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ({"largeBlob": True}, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ({"largeBlob": {"support": "always"}}, CtapStatus.INVALID_PARAMETER),
    ({"largeBlob": {"support": 1}}, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ({"largeBlob": {"read": True}}, CtapStatus.INVALID_PARAMETER),
]


@pytest.mark.parametrize(("extensions", "status"), MAKE_CREDENTIAL_ERRORS)
def test_bad_make_credential_extensions_map_to_ctap_statuses(
    extensions: Any, status: CtapStatus
) -> None:
    assert status_of(parse_make_credential_extensions, extensions) == status


def test_get_assertion_inputs_parse() -> None:
    parsed = parse_get_assertion_extensions(
        {
            "prf": {
                "eval": {"first": SALT_1},
                "evalByCredential": {CRED_B: {"first": SALT_2, "second": SALT_1}},
            },
            "largeBlob": {"read": True},
        },
        (CRED_A, CRED_B),
    )
    assert parsed.prf and parsed.large_blob_read and parsed.large_blob_write is None
    assert parsed.prf_salts_for(CRED_B) == PrfSalts(SALT_2, SALT_1)
    assert parsed.prf_salts_for(CRED_A) == PrfSalts(SALT_1)  # eval is the fallback
    data = b"x" * 300
    write = parse_get_assertion_extensions(
        {"largeBlob": {"write": fido2_compress(data), "originalSize": 300}}, (CRED_A,)
    )
    assert write.large_blob_write == LargeBlob(fido2_compress(data), 300)


def _write(data: bytes, size: int | None = None) -> dict[str, Any]:
    return {"largeBlob": {"write": data, "originalSize": len(data) if size is None else size}}


GET_ASSERTION_ERRORS: list[tuple[Any, tuple[bytes, ...] | None, CtapStatus]] = [
    ("prf", None, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ({"prf": {"evalByCredential": []}}, None, CtapStatus.CBOR_UNEXPECTED_TYPE),
    (
        {"prf": {"evalByCredential": {"id": {"first": SALT_1}}}},
        None,
        CtapStatus.CBOR_UNEXPECTED_TYPE,
    ),
    ({"prf": {"evalByCredential": {b"": {"first": SALT_1}}}}, None, CtapStatus.INVALID_PARAMETER),
    (
        {"prf": {"evalByCredential": {CRED_A: {"first": b"short"}}}},
        None,
        CtapStatus.INVALID_PARAMETER,
    ),
    ({"prf": {"evalByCredential": {CRED_A: {}}}}, None, CtapStatus.MISSING_PARAMETER),
    ({"largeBlob": {}}, None, CtapStatus.INVALID_PARAMETER),
    ({"largeBlob": {"read": 1}}, None, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ({"largeBlob": {"read": True, "write": b""}}, (CRED_A,), CtapStatus.INVALID_PARAMETER),
    ({"largeBlob": {"write": b""}}, (CRED_A,), CtapStatus.INVALID_PARAMETER),
    ({"largeBlob": {"support": "required"}}, None, CtapStatus.INVALID_PARAMETER),
    (_write(fido2_compress(b"abc")), None, CtapStatus.INVALID_PARAMETER),
    (_write(fido2_compress(b"abc")), (CRED_A, CRED_B), CtapStatus.INVALID_PARAMETER),
    (_write(fido2_compress(b"abc"), 4), (CRED_A,), CtapStatus.INVALID_PARAMETER),
    (_write(b"not deflate", 3), (CRED_A,), CtapStatus.INVALID_PARAMETER),
    (_write(fido2_compress(b"abc"), -3), (CRED_A,), CtapStatus.INVALID_PARAMETER),
    (_write(fido2_compress(b"abc"), True), (CRED_A,), CtapStatus.CBOR_UNEXPECTED_TYPE),
    (
        {"largeBlob": {"write": "abc", "originalSize": 3}},
        (CRED_A,),
        CtapStatus.CBOR_UNEXPECTED_TYPE,
    ),
]


@pytest.mark.parametrize(("extensions", "allow", "status"), GET_ASSERTION_ERRORS)
def test_bad_get_assertion_extensions_map_to_ctap_statuses(
    extensions: Any, allow: tuple[bytes, ...] | None, status: CtapStatus
) -> None:
    assert status_of(parse_get_assertion_extensions, extensions, allow) == status


def test_large_blob_keeps_at_least_1024_bytes_and_does_not_write_over_the_maximum() -> None:
    incompressible = os.urandom(MIN_LARGE_BLOB_BYTES)
    compressed = fido2_compress(incompressible)
    assert len(compressed) > MIN_LARGE_BLOB_BYTES  # even the worst case fits
    accepted = parse_get_assertion_extensions(_write(compressed, MIN_LARGE_BLOB_BYTES), (CRED_A,))
    assert accepted.large_blob_write == LargeBlob(compressed, MIN_LARGE_BLOB_BYTES)
    assert not accepted.large_blob_too_big
    too_big = fido2_compress(os.urandom(MAX_LARGE_BLOB_BYTES))
    assert len(too_big) > MAX_LARGE_BLOB_BYTES
    bomb = fido2_compress(bytes(3 << 19))  # small when compressed, 1.5 MiB inflated
    assert len(bomb) <= MAX_LARGE_BLOB_BYTES
    for data, size in ((too_big, MAX_LARGE_BLOB_BYTES), (bomb, 3 << 19)):
        # Not an error (WebAuthn L3 §10.1.5): the sign-in goes ahead, nothing is written.
        refused = parse_get_assertion_extensions(_write(data, size), (CRED_A,))
        assert refused.large_blob_write is None and refused.large_blob_too_big
        stored = LargeBlob(compressed, MIN_LARGE_BLOB_BYTES)
        result = assert_with(refused, CRED_A, prf_secret=None, large_blob=stored)
        assert result.large_blob_to_store is None and result.large_blob_refused
        for saved in (False, True):  # never claimed written, whatever the caller says
            assert result.unsigned_outputs(stored=saved) == {"largeBlob": {"written": False}}


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=40) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=16) | st.binary(max_size=8) | st.integers(), inner, max_size=4
        )
    ),
    max_leaves=12,
)
extension_maps = st.dictionaries(
    st.sampled_from(["prf", "largeBlob", "credProtect", "eval", "other"]), cbor_values, max_size=4
)


@settings(max_examples=200, deadline=None)
@given(value=extension_maps | cbor_values, allow=st.none() | st.just((CRED_A,)))
def test_no_input_escapes_as_anything_but_a_ctap_status(
    value: Any, allow: tuple[bytes, ...] | None
) -> None:
    for parse in (
        lambda: parse_make_credential_extensions(value),
        lambda: parse_get_assertion_extensions(value, allow),
    ):
        try:
            parse()
        except CtapStatusError as exc:
            assert exc.status in {
                CtapStatus.CBOR_UNEXPECTED_TYPE,
                CtapStatus.INVALID_PARAMETER,
                CtapStatus.MISSING_PARAMETER,
            }


# --- PRF, credProtect and outputs -------------------------------------------------------------


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_prf_is_hmac_sha256_of_the_salts(first: bytes, second: bytes) -> None:
    assert evaluate_prf(SECRET, PrfSalts(first, second)) == {
        "first": hmac.new(SECRET, first, hashlib.sha256).digest(),
        "second": hmac.new(SECRET, second, hashlib.sha256).digest(),
    }


def test_prf_secrets_are_32_random_bytes() -> None:
    secrets = {new_prf_secret() for _ in range(8)}
    assert len(secrets) == 8 and all(len(s) == 32 for s in secrets)


def test_registration_outputs() -> None:
    plain = register(MakeCredentialExtensions(), SECRET)
    assert (plain.cred_protect, plain.authenticator_extensions, plain.unsigned_outputs) == (
        CredProtect.UV_OPTIONAL,
        {},
        {},
    )
    every = register(
        MakeCredentialExtensions(
            True, PrfSalts(SALT_1), CredProtect.UV_REQUIRED, LargeBlobSupport.REQUIRED
        ),
        SECRET,
    )
    assert every.cred_protect is CredProtect.UV_REQUIRED
    assert every.authenticator_extensions == {"credProtect": 3}
    assert every.unsigned_outputs == {
        "prf": {"enabled": True, "results": evaluate_prf(SECRET, PrfSalts(SALT_1))},
        "largeBlob": {"supported": True},
    }
    assert register(MakeCredentialExtensions(prf=True), SECRET).unsigned_outputs == {
        "prf": {"enabled": True}
    }


@pytest.mark.parametrize("level", list(CredProtect))
@pytest.mark.parametrize("allow_list", [False, True])
@pytest.mark.parametrize("uv", [False, True])
def test_cred_protect_visibility(level: CredProtect, allow_list: bool, uv: bool) -> None:
    expected = {
        CredProtect.UV_OPTIONAL: True,
        CredProtect.UV_OPTIONAL_WITH_CREDENTIAL_ID_LIST: allow_list or uv,
        CredProtect.UV_REQUIRED: uv,
    }[level]
    assert credential_visible(level, allow_list=allow_list, uv=uv) is expected


def test_assertion_outputs_for_the_chosen_credential() -> None:
    asked = GetAssertionExtensions(
        prf=True, prf_eval=PrfSalts(SALT_1), prf_by_credential={CRED_B: PrfSalts(SALT_2)}
    )
    for credential, salt in ((CRED_A, SALT_1), (CRED_B, SALT_2)):
        result = assert_with(asked, credential, prf_secret=SECRET, large_blob=None)
        # No UV needed: the output is defined by the credential's secret and the salt alone.
        assert result.unsigned_outputs() == {
            "prf": {"results": evaluate_prf(SECRET, PrfSalts(salt))}
        }
    old_credential = assert_with(asked, CRED_A, prf_secret=None, large_blob=None)
    assert old_credential.unsigned_outputs() == {}
    only_other = GetAssertionExtensions(prf=True, prf_by_credential={CRED_B: PrfSalts(SALT_2)})
    assert (
        assert_with(only_other, CRED_A, prf_secret=SECRET, large_blob=None).unsigned_outputs() == {}
    )


def test_large_blob_read_and_write_outputs() -> None:
    blob = LargeBlob(fido2_compress(b"hi"), 2)
    read = GetAssertionExtensions(large_blob_read=True)
    assert assert_with(read, CRED_A, prf_secret=None, large_blob=blob).unsigned_outputs() == {
        "largeBlob": {"blob": blob.compressed, "originalSize": 2}
    }
    # nothing stored: no largeBlob output at all (an empty map is not a valid CTAP answer)
    assert assert_with(read, CRED_A, prf_secret=None, large_blob=None).unsigned_outputs() == {}
    write = GetAssertionExtensions(large_blob_write=blob)
    result = assert_with(write, CRED_A, prf_secret=None, large_blob=None)
    assert result.large_blob_to_store == blob
    assert result.unsigned_outputs() == {"largeBlob": {"written": False}}  # not stored yet
    assert result.unsigned_outputs(stored=True) == {"largeBlob": {"written": True}}


def test_phone_answers_python_fido2_compressed_writes_the_desktop_can_read() -> None:
    data = b"written by python-fido2's compressor" * 20
    request = parse_get_assertion_extensions(_write(fido2_compress(data), len(data)), (CRED_A,))
    stored = assert_with(request, CRED_A, prf_secret=None, large_blob=None)
    read = parse_authentication_extensions({"largeBlob": {"read": True}})
    on_phone = parse_get_assertion_extensions(
        authentication_ctap_extensions(read, ["largeBlob"]), None
    )
    answer = assert_with(on_phone, CRED_A, prf_secret=None, large_blob=stored.large_blob_to_store)
    outputs = decode_cbor_map(cbor.encode({8: answer.unsigned_outputs()}))[8]
    assert authentication_client_outputs(read, outputs) == {
        "largeBlob": {"blob": websafe_encode(data)}
    }


def test_large_blob_store_form_round_trips_and_refuses_damage() -> None:
    blob = LargeBlob(fido2_compress(b"notes" * 50), 250)
    assert LargeBlob.from_json(json.loads(json.dumps(blob.to_json()))) == blob
    assert "notes" not in repr(LargeBlob(b"notes", 5))  # blobs and PRF outputs stay out of logs
    output = evaluate_prf(SECRET, PrfSalts(SALT_1))["first"]
    registered = register(MakeCredentialExtensions(True, PrfSalts(SALT_1)), SECRET)
    assert output.hex() not in repr(registered).encode().hex() and repr(output) not in repr(
        registered
    )
    damaged: list[Any] = [
        None,
        {"data": 5, "originalSize": 250},
        {"data": websafe_encode(blob.compressed), "originalSize": "250"},
        {"data": websafe_encode(blob.compressed), "originalSize": 251},
        {"data": websafe_encode(b"\x00" * (MAX_LARGE_BLOB_BYTES + 1)), "originalSize": 1},
        {"data": websafe_encode(blob.compressed)},
    ]
    for entry in damaged:
        with pytest.raises((ValueError, TypeError, KeyError)):
            LargeBlob.from_json(entry)


def test_registration_outputs_fit_a_makecredential_response_fido2_parses() -> None:
    """Signed outputs go in authData (ED flag), unsigned ones in response key 6."""
    result = register(
        MakeCredentialExtensions(True, PrfSalts(SALT_1), CredProtect.UV_REQUIRED), SECRET
    )
    key = ES256.from_cryptography_key(ec.generate_private_key(ec.SECP256R1()).public_key())  # type: ignore[no-untyped-call]
    flags = AuthenticatorData.FLAG
    auth_data = AuthenticatorData.create(
        sha256(b"example.com"),
        flags.UP | flags.UV | flags.AT | flags.ED,
        0,
        AttestedCredentialData.create(Aaguid.NONE, CRED_A, key),
        result.authenticator_extensions,
    )
    body = cbor.encode({1: "none", 2: auth_data, 3: {}, 6: result.unsigned_outputs})
    parsed = AttestationResponse.from_dict(decode_cbor_map(body))
    assert parsed.auth_data.extensions == {"credProtect": 3}
    assert parsed.unsigned_extension_outputs == {
        "prf": {
            "enabled": True,
            "results": {"first": evaluate_prf(SECRET, PrfSalts(SALT_1))["first"]},
        }
    }
