"""Desktop extensions: JSON validation, the CTAP map per phone getInfo, clientExtensionResults.

Cross-checked against python-fido2 (PRF salt, credProtect policy names, raw DEFLATE of large
blobs, PRF output JSON types) and a real phone's getInfo (Android Chrome, test vector I1).
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, cast

import pytest
from fido2 import cbor
from fido2.ctap2 import blob as fido2_blob
from fido2.ctap2 import extensions as fido2_extensions
from fido2.ctap2.base import Info
from fido2.ctap2.extensions import (
    AuthenticatorExtensionsLargeBlobOutputs,
    AuthenticatorExtensionsPRFOutputs,
    AuthenticatorExtensionsPRFValues,
    CredProtectExtension,
)
from fido2.utils import websafe_encode
from hypothesis import given
from hypothesis import strategies as st

from hybrid.authenticator import extensions as phone
from hybrid.ctap import decode_cbor_map
from hybrid.errors import ProtocolError
from hybrid.webauthn.errors import InvalidOptions
from hybrid.webauthn.extensions import (
    MAX_BLOB_ORIGINAL_SIZE,
    AuthenticationExtensions,
    LargeBlobSupport,
    PhoneLacksExtension,
    PrfValues,
    RegistrationExtensions,
    authentication_client_outputs,
    authentication_ctap_extensions,
    compress_blob,
    decompress_blob,
    parse_authentication_extensions,
    parse_registration_extensions,
    prf_salt,
    registration_client_outputs,
    registration_ctap_extensions,
)

#: Test vector I1: Android Chrome's post-handshake message; key 1 is its getInfo.
ANDROID_POST_HANDSHAKE = bytes.fromhex(
    "a101585ca50182684649444f5f325f30684649444f5f325f3102826c6465766963655075624b6579637072"
    "6603500000000000000000000000000000000004a262726bf5627576f50983656361626c65666879627269"
    "6468696e7465726e616c"
)
ANDROID_INFO = Info.from_dict(decode_cbor_map(decode_cbor_map(ANDROID_POST_HANDSHAKE)[1]))
OUR_PHONE = Info.from_dict(
    {1: ["FIDO_2_0", "FIDO_2_1"], 2: list(phone.SUPPORTED_EXTENSIONS), 3: bytes(16)}
)
BARE_PHONE = Info.from_dict({1: ["FIDO_2_0"], 3: bytes(16)})
CRED_A, CRED_B = b"\x01" * 16, b"\x02" * 32
B64 = websafe_encode


def fido2_prf_salt(value: bytes) -> bytes:
    """python-fido2's own PRF salt derivation (what its Fido2Client sends to keys)."""
    return cast(bytes, fido2_extensions._prf_salt(value))  # type: ignore[no-untyped-call]


def fido2_compress(data: bytes) -> bytes:
    """python-fido2's largeBlob compression (raw DEFLATE)."""
    return cast(bytes, fido2_blob._compress(data))  # type: ignore[no-untyped-call]


def fido2_decompress(data: bytes) -> bytes:
    return cast(bytes, fido2_blob._decompress(data))  # type: ignore[no-untyped-call]


def reg(
    extensions: Any, rk: str | None = "required", uv: str | None = None
) -> RegistrationExtensions:
    return parse_registration_extensions(extensions, resident_key=rk, user_verification=uv)


@given(st.binary(max_size=200))
def test_prf_salt_matches_fido2_and_the_spec(value: bytes) -> None:
    assert prf_salt(value) == fido2_prf_salt(value)
    assert prf_salt(value) == hashlib.sha256(b"WebAuthn PRF" + b"\x00" + value).digest()


@given(st.binary(max_size=3000))
def test_blob_compression_is_raw_deflate_like_fido2(data: bytes) -> None:
    assert fido2_decompress(compress_blob(data)) == data
    assert decompress_blob(fido2_compress(data), len(data)) == data
    with pytest.raises(zlib.error):  # no zlib header: it is raw DEFLATE (RFC 1951)
        zlib.decompress(compress_blob(data))


@pytest.mark.parametrize(
    ("blob", "size"),
    [
        (compress_blob(b"hello"), 4),  # shorter than originalSize claims
        (compress_blob(b"hello"), 6),  # longer
        (compress_blob(b"hello")[:-2], 5),  # truncated stream
        (compress_blob(b"hello") + b"junk", 5),  # trailing bytes
        (b"\xff\xff\xff", 3),  # not DEFLATE
        (compress_blob(b""), -1),
        (compress_blob(b"x"), MAX_BLOB_ORIGINAL_SIZE + 1),  # hostile size, no huge buffer
    ],
)
def test_decompress_refuses_anything_but_one_exact_stream(blob: bytes, size: int) -> None:
    assert decompress_blob(blob, size) is None


def test_no_extensions_and_unknown_ones_are_ignored() -> None:
    assert reg(None, rk="discouraged") == RegistrationExtensions()
    assert reg({"uvm": True, "appidExclude": "x"}, rk="discouraged") == RegistrationExtensions()
    assert parse_authentication_extensions({"appid": "https://a"}) == AuthenticationExtensions()


def test_prf_inputs_are_decoded_and_hashed_into_salts() -> None:
    parsed = reg({"prf": {"eval": {"first": B64(b"one"), "second": B64(b"two")}}})
    assert parsed.prf is not None and parsed.prf.eval == PrfValues(b"one", b"two")
    assert parsed.prf.eval.to_ctap() == {
        "first": fido2_prf_salt(b"one"),
        "second": fido2_prf_salt(b"two"),
    }
    assert reg({"prf": {}}).prf is not None  # prf without eval: "enable PRF for this passkey"


@pytest.mark.parametrize("policy", list(CredProtectExtension.POLICY))
def test_credential_protection_policy_levels_match_fido2(
    policy: CredProtectExtension.POLICY,
) -> None:
    parsed = reg({"credentialProtectionPolicy": policy.value}, rk="required", uv="required")
    assert parsed.cred_protect == CredProtectExtension.POLICY.str2int(policy.value)
    assert parsed.cred_protect == phone.CredProtect(parsed.cred_protect)


@pytest.mark.parametrize(
    ("rk", "uv", "level"),
    [
        ("required", None, 3),  # Chromium: passkey + uv preferred → UV required
        ("required", "preferred", 3),
        ("required", "required", 2),
        ("required", "discouraged", 2),
        ("preferred", "preferred", 2),
        ("discouraged", "preferred", None),
        (None, None, None),
    ],
)
def test_chromium_default_cred_protect(rk: str | None, uv: str | None, level: int | None) -> None:
    assert reg({}, rk=rk, uv=uv).cred_protect == level


_LEVEL_2 = "userVerificationOptionalWithCredentialIDList"


@pytest.mark.parametrize("uv", [None, "discouraged", "preferred", "required"])
def test_uv_required_policy_requires_uv_whatever_the_site_set(uv: str | None) -> None:
    """Chromium raises userVerification to "required" for this policy instead of refusing."""
    for rk in ("required", "preferred", "discouraged", None):
        parsed = reg({"credentialProtectionPolicy": "userVerificationRequired"}, rk=rk, uv=uv)
        assert parsed.cred_protect == 3 and parsed.requires_user_verification


@pytest.mark.parametrize(
    ("extensions", "rk", "uv"),
    [
        ({}, "required", "preferred"),  # Chromium's default level 3: only ever sent with uv
        (
            {"credentialProtectionPolicy": "userVerificationOptionalWithCredentialIDList"},
            None,
            None,
        ),
        ({"credentialProtectionPolicy": "userVerificationOptional"}, "required", "discouraged"),
        ({"prf": {}}, None, "discouraged"),
    ],
)
def test_other_levels_leave_user_verification_alone(
    extensions: dict[str, Any], rk: str | None, uv: str | None
) -> None:
    assert not reg(extensions, rk=rk, uv=uv).requires_user_verification


def test_large_blob_support_defaults_to_preferred_as_in_chromium() -> None:
    assert reg({"largeBlob": {}}).large_blob is LargeBlobSupport.PREFERRED
    assert reg({"largeBlob": {"support": "someday"}}).large_blob is LargeBlobSupport.PREFERRED
    assert reg({"largeBlob": {"support": "required"}}).large_blob is LargeBlobSupport.REQUIRED


MALFORMED_REGISTRATION: list[tuple[Any, str | None, str | None]] = [
    (["prf"], "required", None),
    ({"credProps": "yes"}, "required", None),
    ({"prf": True}, "required", None),
    ({"prf": {"eval": {}}}, "required", None),
    ({"prf": {"eval": {"second": B64(b"2")}}}, "required", None),  # second without first
    ({"prf": {"eval": {"first": "a+b/"}}}, "required", None),  # base64, not base64url
    ({"prf": {"eval": {"first": "ab cd"}}}, "required", None),
    ({"prf": {"eval": {"first": "A"}}}, "required", None),  # impossible length
    ({"prf": {"eval": {"first": 5}}}, "required", None),
    ({"prf": {"eval": {"first": B64(b"1"), "second": ["x"]}}}, "required", None),
    ({"prf": {"eval": "first"}}, "required", None),
    ({"prf": {"evalByCredential": {B64(CRED_A): {"first": ""}}}}, "required", None),
    ({"credentialProtectionPolicy": "userVerificationSometimes"}, "required", "required"),
    ({"credentialProtectionPolicy": 2}, "required", "required"),
    ({"credentialProtectionPolicy": ["userVerificationRequired"]}, "required", "required"),
    ({"enforceCredentialProtectionPolicy": "true"}, "required", None),
    ({"enforceCredentialProtectionPolicy": True}, "required", None),  # nothing to enforce
    (
        {
            "credentialProtectionPolicy": "userVerificationOptional",
            "enforceCredentialProtectionPolicy": True,
        },
        "required",
        None,
    ),
    ({"credentialProtectionPolicy": "userVerificationOptional"}, "preferred", None),
    ({"largeBlob": "required"}, "required", None),
    ({"largeBlob": {"read": True}}, "required", None),
    ({"largeBlob": {"write": B64(b"x")}}, "required", None),
    ({"largeBlob": {"support": True}}, "required", None),
]


@pytest.mark.parametrize(("extensions", "rk", "uv"), MALFORMED_REGISTRATION)
def test_malformed_registration_extensions_raise_invalid_options(
    extensions: Any, rk: str | None, uv: str | None
) -> None:
    with pytest.raises(InvalidOptions):
        reg(extensions, rk, uv)


MALFORMED_AUTHENTICATION: list[tuple[Any, tuple[bytes, ...]]] = [
    ("prf", ()),
    ({"prf": {"evalByCredential": {B64(CRED_A): {"first": ""}}}}, ()),  # no allowCredentials
    ({"prf": {"evalByCredential": {B64(CRED_B): {"first": ""}}}}, (CRED_A,)),  # not allowed
    ({"prf": {"evalByCredential": {"": {"first": ""}}}}, (CRED_A,)),
    ({"prf": {"evalByCredential": {"!!": {"first": ""}}}}, (CRED_A,)),
    ({"prf": {"evalByCredential": {B64(CRED_A): {"second": ""}}}}, (CRED_A,)),
    ({"prf": {"evalByCredential": [B64(CRED_A)]}}, (CRED_A,)),
    ({"largeBlob": {"support": "required"}}, (CRED_A,)),
    ({"largeBlob": {"read": True, "write": B64(b"x")}}, (CRED_A,)),
    ({"largeBlob": {"write": B64(b"x")}}, ()),
    ({"largeBlob": {"write": B64(b"x")}}, (CRED_A, CRED_B)),
    ({"largeBlob": {"write": "not base64url!"}}, (CRED_A,)),
    ({"largeBlob": {"read": "yes"}}, (CRED_A,)),
    ({"largeBlob": []}, (CRED_A,)),
]


@pytest.mark.parametrize(("extensions", "allow"), MALFORMED_AUTHENTICATION)
def test_malformed_authentication_extensions_raise_invalid_options(
    extensions: Any, allow: tuple[bytes, ...]
) -> None:
    with pytest.raises(InvalidOptions):
        parse_authentication_extensions(extensions, allow)


def test_padding_is_tolerated_in_base64url_inputs() -> None:
    parsed = parse_authentication_extensions({"prf": {"eval": {"first": "YQ=="}}})
    assert parsed.prf is not None and parsed.prf.eval == PrfValues(b"a")


def test_android_phone_gets_prf_and_nothing_it_does_not_list() -> None:
    assert "prf" in ANDROID_INFO.extensions and "credProtect" not in ANDROID_INFO.extensions
    parsed = reg(
        {
            "prf": {"eval": {"first": B64(b"a")}},
            "credentialProtectionPolicy": "userVerificationOptionalWithCredentialIDList",
            "largeBlob": {},
        }
    )
    ctap = registration_ctap_extensions(parsed, ANDROID_INFO, resident_key=True)
    assert ctap == {"prf": {"eval": {"first": prf_salt(b"a")}}}
    assert registration_ctap_extensions(parsed, BARE_PHONE, resident_key=True) == {}


def test_our_phone_gets_every_extension_in_wire_form() -> None:
    parsed = reg(
        {
            "prf": {},
            "credentialProtectionPolicy": "userVerificationRequired",
            "largeBlob": {"support": "required"},
        },
        uv="required",
    )
    ctap = registration_ctap_extensions(parsed, OUR_PHONE, resident_key=True)
    assert ctap == {"prf": {}, "credProtect": 3, "largeBlob": {"support": "required"}}
    # canonical CBOR as it goes into makeCredential key 6
    assert cbor.decode(cbor.encode(ctap)) == ctap


def test_enforced_cred_protect_on_a_phone_without_it_fails_before_sending() -> None:
    parsed = reg(
        {
            "credentialProtectionPolicy": "userVerificationOptionalWithCredentialIDList",
            "enforceCredentialProtectionPolicy": True,
        }
    )
    with pytest.raises(PhoneLacksExtension) as raised:
        registration_ctap_extensions(parsed, ANDROID_INFO, resident_key=True)
    assert raised.value.extension == "credProtect"
    unenforced = reg({"credentialProtectionPolicy": "userVerificationOptionalWithCredentialIDList"})
    assert registration_ctap_extensions(unenforced, ANDROID_INFO, resident_key=True) == {}


@pytest.mark.parametrize(("info", "rk"), [(ANDROID_INFO, True), (OUR_PHONE, False)])
def test_required_large_blob_needs_a_phone_with_it_and_a_passkey(info: Info, rk: bool) -> None:
    with pytest.raises(PhoneLacksExtension) as raised:
        registration_ctap_extensions(
            reg({"largeBlob": {"support": "required"}}), info, resident_key=rk
        )
    assert raised.value.extension == "largeBlob"
    preferred = reg({"largeBlob": {"support": "preferred"}}, rk="discouraged")
    assert registration_ctap_extensions(preferred, info, resident_key=rk) == {}


def test_assertion_map_carries_eval_by_credential_and_compressed_writes() -> None:
    allow = (CRED_B, CRED_A)
    parsed = parse_authentication_extensions(
        {
            "prf": {
                "eval": {"first": B64(b"e")},
                "evalByCredential": {B64(CRED_B): {"first": B64(b"b"), "second": B64(b"c")}},
            }
        },
        allow,
    )
    ctap = authentication_ctap_extensions(parsed, OUR_PHONE)
    assert ctap == {
        "prf": {
            "eval": {"first": prf_salt(b"e")},
            "evalByCredential": {CRED_B: {"first": prf_salt(b"b"), "second": prf_salt(b"c")}},
        }
    }
    data = b"secret notes " * 40
    write = parse_authentication_extensions({"largeBlob": {"write": B64(data)}}, (CRED_A,))
    blob = authentication_ctap_extensions(write, OUR_PHONE)["largeBlob"]
    assert blob["originalSize"] == len(data) and fido2_decompress(blob["write"]) == data
    read = parse_authentication_extensions({"largeBlob": {"read": True}}, ())
    assert authentication_ctap_extensions(read, OUR_PHONE) == {"largeBlob": {"read": True}}
    assert authentication_ctap_extensions(read, ANDROID_INFO) == {}
    assert (
        authentication_ctap_extensions(parse_authentication_extensions({"prf": {}}), OUR_PHONE)
        == {}
    )


def test_registration_outputs_serialise_like_fido2s_types() -> None:
    first, second = bytes(range(32)), bytes(range(32, 64))
    parsed = reg({"credProps": True, "prf": {"eval": {"first": "", "second": ""}}, "largeBlob": {}})
    unsigned = {
        "prf": {"enabled": True, "results": {"first": first, "second": second}},
        "largeBlob": {"supported": True},
    }
    results = registration_client_outputs(parsed, unsigned, resident_key=True)
    expected_prf = AuthenticatorExtensionsPRFOutputs(
        enabled=True, results=AuthenticatorExtensionsPRFValues(first, second)
    )
    assert results == {
        "credProps": {"rk": True},
        "prf": dict(expected_prf),
        "largeBlob": dict(AuthenticatorExtensionsLargeBlobOutputs(supported=True)),
    }
    assert AuthenticatorExtensionsPRFOutputs.from_dict(results["prf"]) == expected_prf


def test_requested_extensions_the_phone_ignored_report_false_or_empty() -> None:
    parsed = reg(
        {
            "credProps": True,
            "prf": {},
            "largeBlob": {},
            "credentialProtectionPolicy": "userVerificationOptional",
        }
    )
    assert registration_client_outputs(parsed, None, resident_key=False) == {
        "credProps": {},
        "prf": {"enabled": False},
        "largeBlob": {"supported": False},
    }  # and credProtect never has a client output, as in browsers
    assert registration_client_outputs(reg({}), {"prf": {"enabled": True}}, resident_key=True) == {}
    got = parse_authentication_extensions(
        {"prf": {"eval": {"first": ""}}, "largeBlob": {"read": True}}
    )
    assert authentication_client_outputs(got, {}) == {"prf": {}, "largeBlob": {}}
    write = parse_authentication_extensions({"largeBlob": {"write": ""}}, (CRED_A,))
    assert authentication_client_outputs(write, None) == {"largeBlob": {"written": False}}


def test_large_blob_read_is_decompressed_or_dropped() -> None:
    read = parse_authentication_extensions({"largeBlob": {"read": True}})
    data = b"\x00\x01" * 700
    good = {"largeBlob": {"blob": fido2_compress(data), "originalSize": len(data)}}
    assert authentication_client_outputs(read, good) == {"largeBlob": {"blob": B64(data)}}
    lying = {"largeBlob": {"blob": fido2_compress(data), "originalSize": len(data) + 1}}
    assert authentication_client_outputs(read, lying) == {"largeBlob": {}}


EVERYTHING = reg({"prf": {"eval": {"first": ""}}, "largeBlob": {}})
READS = parse_authentication_extensions({"prf": {}, "largeBlob": {"read": True}})
WRITES = parse_authentication_extensions({"largeBlob": {"write": ""}}, (CRED_A,))
MALFORMED_OUTPUTS: list[tuple[str, Any]] = [
    ("create", ["prf"]),
    ("read", {1: {}}),
    ("create", {"prf": True}),
    ("read", {"prf": {"results": []}}),
    ("read", {"prf": {"results": {"first": bytes(31)}}}),
    ("create", {"prf": {"results": {"second": bytes(32)}}}),
    ("read", {"prf": {"results": {"first": bytes(32), "second": "x" * 32}}}),
    ("create", {"prf": {"enabled": 1}}),
    ("create", {"largeBlob": {"supported": "yes"}}),
    ("write", {"largeBlob": {"written": 1}}),
    ("write", {"largeBlob": []}),
    ("read", {"largeBlob": {"blob": "text", "originalSize": 4}}),
    ("read", {"largeBlob": {"blob": b"", "originalSize": True}}),
    ("read", {"largeBlob": {"originalSize": 4}}),
]


@pytest.mark.parametrize(("kind", "unsigned"), MALFORMED_OUTPUTS)
def test_malformed_phone_outputs_raise_protocol_error(kind: str, unsigned: Any) -> None:
    with pytest.raises(ProtocolError):
        if kind == "create":
            registration_client_outputs(EVERYTHING, unsigned, resident_key=True)
        else:
            authentication_client_outputs(READS if kind == "read" else WRITES, unsigned)
