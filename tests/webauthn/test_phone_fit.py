"""The request is built for the phone's getInfo: user verification, credProtect's default, and
which extensions go out; python-fido2's own credProtect handling is the reference."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fido2 import cbor
from fido2.ctap2.base import Info
from fido2.ctap2.extensions import CredProtectExtension
from fido2.utils import websafe_encode
from fido2.webauthn import PublicKeyCredentialCreationOptions

from hybrid.authenticator import SoftwareAuthenticator, approve_all
from hybrid.ctap import GetAssertionKey, MakeCredentialKey, decode_cbor_map
from hybrid.errors import HybridError, PhoneLacksFeature, UserVerificationUnavailable
from hybrid.webauthn import InvalidOptions, prepare_get_assertion, prepare_make_credential
from hybrid.webauthn.extensions import PhoneLacksExtension, prf_salt
from tests.conftest import PHONE_INFO

ORIGIN = "https://example.com"
#: Our phone by default (verifies_user=False): getInfo lists the extensions but no `uv`.
NON_VERIFYING = Info.from_dict(
    decode_cbor_map(SoftwareAuthenticator(approve=approve_all).get_info_cbor())
)
#: A verifying phone that lists no extensions at all.
BARE_VERIFYING = Info.from_dict({1: ["FIDO_2_0"], 3: bytes(16), 4: {"uv": True}})
B64 = websafe_encode
CRED = b"\x07" * 16


def creation(rk: str | None = None, uv: str | None = None, **extensions: Any) -> dict[str, Any]:
    selection = {k: v for k, v in (("residentKey", rk), ("userVerification", uv)) if v}
    return {
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": B64(b"user"), "name": "alice"},
        "challenge": B64(b"c" * 32),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": selection,
        "extensions": extensions,
    }


def request(uv: str | None = None, allow: bool = False, **extensions: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"challenge": B64(b"c" * 32), "rpId": "example.com"}
    if uv:
        options["userVerification"] = uv
    if allow:
        options["allowCredentials"] = [{"type": "public-key", "id": B64(CRED)}]
    return options | {"extensions": extensions}


def body(ctap_request: bytes) -> dict[int, Any]:
    decoded = cbor.decode(ctap_request[1:])
    assert isinstance(decoded, dict)
    return decoded


@pytest.mark.parametrize(
    ("requirement", "info", "sent"),
    [
        (None, PHONE_INFO, True),  # "preferred" is WebAuthn's default
        ("preferred", PHONE_INFO, True),
        ("required", PHONE_INFO, True),
        ("discouraged", PHONE_INFO, False),
        (None, NON_VERIFYING, False),
        ("preferred", NON_VERIFYING, False),
        ("discouraged", NON_VERIFYING, False),
    ],
)
def test_uv_is_sent_only_to_a_phone_that_verifies(
    requirement: str | None, info: Info, sent: bool
) -> None:
    create = body(prepare_make_credential(creation(uv=requirement), ORIGIN).ctap_request_for(info))
    get = body(prepare_get_assertion(request(uv=requirement), ORIGIN).ctap_request_for(info))
    assert create.get(MakeCredentialKey.OPTIONS, {}).get("uv", False) is sent
    assert get.get(GetAssertionKey.OPTIONS, {}).get("uv", False) is sent
    assert "up" not in get.get(GetAssertionKey.OPTIONS, {})


@pytest.mark.parametrize("kind", ["create", "get"])
def test_uv_required_with_a_phone_that_cannot_verify_fails_before_sending(kind: str) -> None:
    prepared = (
        prepare_make_credential(creation(uv="required"), ORIGIN)
        if kind == "create"
        else prepare_get_assertion(request(uv="required"), ORIGIN)
    )
    with pytest.raises(UserVerificationUnavailable) as refused:
        prepared.ctap_request_for(NON_VERIFYING)
    assert refused.value.feature == "uv"
    assert isinstance(refused.value, PhoneLacksFeature) and isinstance(refused.value, HybridError)


@pytest.mark.parametrize(
    ("rk", "uv", "info", "level"),
    [
        ("required", None, PHONE_INFO, 3),  # Chromium: passkey, uv preferred and sent
        ("required", "preferred", PHONE_INFO, 3),
        ("required", "required", PHONE_INFO, 2),
        ("required", "discouraged", PHONE_INFO, 2),  # no uv sent: level 3 would lock it
        ("preferred", None, PHONE_INFO, 2),
        ("discouraged", None, PHONE_INFO, None),
        ("required", None, NON_VERIFYING, None),  # the bug: level 3 made it unusable
        ("required", "discouraged", NON_VERIFYING, None),
        ("preferred", None, NON_VERIFYING, None),
    ],
)
def test_default_cred_protect_fits_the_phone(
    rk: str, uv: str | None, info: Info, level: int | None
) -> None:
    sent = body(prepare_make_credential(creation(rk=rk, uv=uv), ORIGIN).ctap_request_for(info))
    assert sent.get(MakeCredentialKey.EXTENSIONS, {}).get("credProtect") == level


@pytest.mark.parametrize("policy", list(CredProtectExtension.POLICY))
def test_explicit_cred_protect_matches_python_fido2(policy: CredProtectExtension.POLICY) -> None:
    extensions = {"credentialProtectionPolicy": policy.value}
    options = creation(rk="required", uv="required", **extensions)
    ours = body(prepare_make_credential(options, ORIGIN).ctap_request_for(PHONE_INFO))
    fido2_options = PublicKeyCredentialCreationOptions.from_dict(options)
    processor = CredProtectExtension().make_credential(  # type: ignore[no-untyped-call]
        SimpleNamespace(info=PHONE_INFO), fido2_options, None
    )
    assert processor is not None
    reference = processor.prepare_inputs(None)
    assert ours[MakeCredentialKey.EXTENSIONS]["credProtect"] == reference["credProtect"]


def test_enforced_cred_protect_to_a_phone_without_it_fails_before_sending() -> None:
    options = creation(
        rk="required",
        credentialProtectionPolicy="userVerificationOptionalWithCredentialIDList",
        enforceCredentialProtectionPolicy=True,
    )
    prepared = prepare_make_credential(options, ORIGIN)
    with pytest.raises(PhoneLacksExtension) as refused:
        prepared.ctap_request_for(BARE_VERIFYING)
    assert (refused.value.feature, refused.value.extension) == ("credProtect", "credProtect")
    # python-fido2 refuses the same request for the same authenticator
    with pytest.raises(ValueError):
        CredProtectExtension().make_credential(  # type: ignore[no-untyped-call]
            SimpleNamespace(info=BARE_VERIFYING),
            PublicKeyCredentialCreationOptions.from_dict(options),
            None,
        )


def test_extensions_go_only_to_a_phone_that_lists_them() -> None:
    prf = {"eval": {"first": B64(b"one"), "second": B64(b"two")}}
    create = prepare_make_credential(creation(uv="discouraged", prf=prf), ORIGIN)
    assert body(create.ctap_request_for(PHONE_INFO))[MakeCredentialKey.EXTENSIONS] == {
        "prf": {"eval": {"first": prf_salt(b"one"), "second": prf_salt(b"two")}}
    }
    assert MakeCredentialKey.EXTENSIONS not in body(create.ctap_request_for(BARE_VERIFYING))
    get = prepare_get_assertion(
        request(
            allow=True, prf={"evalByCredential": {B64(CRED): prf["eval"]}}, largeBlob={"read": True}
        ),
        ORIGIN,
    )
    assert body(get.ctap_request_for(PHONE_INFO))[GetAssertionKey.EXTENSIONS] == {
        "prf": {
            "evalByCredential": {CRED: {"first": prf_salt(b"one"), "second": prf_salt(b"two")}}
        },
        "largeBlob": {"read": True},
    }
    assert GetAssertionKey.EXTENSIONS not in body(get.ctap_request_for(BARE_VERIFYING))


def test_unknown_extensions_are_ignored() -> None:
    create = prepare_make_credential(
        creation(uvm=True, appidExclude="x", hmacCreateSecret=True), ORIGIN
    )
    assert MakeCredentialKey.EXTENSIONS not in body(create.ctap_request_for(PHONE_INFO))
    get = prepare_get_assertion(request(appid="https://example.com", uvm=True), ORIGIN)
    assert GetAssertionKey.EXTENSIONS not in body(get.ctap_request_for(PHONE_INFO))


@pytest.mark.parametrize(
    "extensions",
    [
        {"prf": {"eval": {"first": "not base64url!"}}},
        {"prf": {"eval": {"second": B64(b"two")}}},
        {"largeBlob": {"read": "yes"}},
        {"largeBlob": {"write": B64(b"data")}},  # a write needs exactly one allowed credential
    ],
)
def test_malformed_extensions_fail_at_prepare_time(extensions: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptions):
        prepare_get_assertion(request(**extensions), ORIGIN)


@pytest.mark.parametrize(
    "extensions",
    [
        {"prf": {"eval": {"first": "a+b/"}}},
        {"prf": {"eval": {"second": B64(b"two")}}},
        {"prf": {"evalByCredential": {}}},
        {"largeBlob": {"read": True}},
        {"credentialProtectionPolicy": "sometimes"},
    ],
)
def test_malformed_registration_extensions_fail_at_prepare_time(extensions: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptions):
        prepare_make_credential(creation(rk="required", **extensions), ORIGIN)
