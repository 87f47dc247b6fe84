"""Options JSON parsing, RP ID / origin checks, and the CTAP request bytes built from them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fido2 import cbor
from fido2.ctap2.base import Info
from fido2.utils import sha256, websafe_encode
from fido2.webauthn import CollectedClientData

from hybrid.ctap import CtapCommand, GetAssertionKey, MakeCredentialKey
from hybrid.errors import HybridError, UserVerificationUnavailable
from hybrid.webauthn import (
    InvalidOptions,
    InvalidOrigin,
    effective_rp_id,
    prepare_get_assertion,
    prepare_make_credential,
)
from tests.conftest import PHONE_INFO

CHALLENGE = b"c" * 32


def creation(**changes: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": websafe_encode(b"user"), "name": "alice", "displayName": "Alice"},
        "challenge": websafe_encode(CHALLENGE),
        "pubKeyCredParams": [{"type": "public-key", "alg": -8}, {"type": "public-key", "alg": -7}],
    }
    options.update(changes)
    return {k: v for k, v in options.items() if v is not None}


def request(**changes: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"challenge": websafe_encode(CHALLENGE), "rpId": "example.com"}
    options.update(changes)
    return {k: v for k, v in options.items() if v is not None}


def ctap_map(ctap_request: bytes) -> dict[int, Any]:
    body = cbor.decode(ctap_request[1:])
    assert isinstance(body, dict)
    assert cbor.encode(body) == ctap_request[1:]  # CTAP2 canonical CBOR
    return body


def test_make_credential_request_bytes() -> None:
    exclude = [{"type": "public-key", "id": websafe_encode(b"old")}]
    prepared = prepare_make_credential(
        json.dumps(creation(excludeCredentials=exclude)), "https://example.com"
    )
    assert (prepared.kind, prepared.rp_id, prepared.qr_request_type) == (
        "create",
        "example.com",
        "mc",
    )
    assert prepared.ctap_request_for(PHONE_INFO)[0] == CtapCommand.MAKE_CREDENTIAL
    body = ctap_map(prepared.ctap_request_for(PHONE_INFO))
    mc = MakeCredentialKey
    assert set(body) == {
        mc.CLIENT_DATA_HASH,
        mc.RP,
        mc.USER,
        mc.PUB_KEY_CRED_PARAMS,
        mc.EXCLUDE_LIST,
        mc.OPTIONS,
    }
    assert body[mc.CLIENT_DATA_HASH] == sha256(prepared.client_data)
    assert body[mc.RP] == {"id": "example.com", "name": "Example"}
    assert body[mc.USER] == {"id": b"user", "name": "alice", "displayName": "Alice"}
    assert body[mc.PUB_KEY_CRED_PARAMS] == [
        {"alg": -8, "type": "public-key"},
        {"alg": -7, "type": "public-key"},
    ]
    assert body[mc.EXCLUDE_LIST] == [{"id": b"old", "type": "public-key"}]
    # residentKey defaults to discouraged, userVerification to preferred
    assert body[mc.OPTIONS] == {"uv": True}

    client_data = CollectedClientData(bytes(prepared.client_data))
    assert client_data.type == "webauthn.create"
    assert client_data.challenge == CHALLENGE
    assert client_data.origin == "https://example.com"
    assert client_data.cross_origin is False


@pytest.mark.parametrize(
    ("resident_key", "user_verification", "options"),
    [
        ("required", "required", {"rk": True, "uv": True}),
        ("preferred", "preferred", {"rk": True, "uv": True}),
        ("discouraged", "discouraged", None),
        (None, None, {"uv": True}),
    ],
)
def test_rk_and_uv_options(
    resident_key: str | None, user_verification: str | None, options: dict[str, bool] | None
) -> None:
    selection = {"residentKey": resident_key, "userVerification": user_verification}
    selection = {k: v for k, v in selection.items() if v is not None}
    body = ctap_map(
        prepare_make_credential(
            creation(authenticatorSelection=selection), "https://example.com"
        ).ctap_request_for(PHONE_INFO)
    )
    assert body.get(MakeCredentialKey.OPTIONS) == options


@pytest.mark.parametrize("user_verification", [None, "discouraged", "preferred", "required"])
def test_uv_required_cred_protect_is_upgraded_to_uv_required(user_verification: str | None) -> None:
    """As Chromium: the request is not refused, it is made with UV (and fails only on a phone
    that cannot verify, before anything is sent)."""
    selection = {"residentKey": "preferred", "userVerification": user_verification}
    options = creation(
        authenticatorSelection={k: v for k, v in selection.items() if v is not None},
        extensions={"credentialProtectionPolicy": "userVerificationRequired"},
    )
    prepared = prepare_make_credential(options, "https://example.com")
    assert prepared.user_verification == "required"
    body = ctap_map(prepared.ctap_request_for(PHONE_INFO))
    assert body[MakeCredentialKey.OPTIONS] == {"rk": True, "uv": True}
    assert body[MakeCredentialKey.EXTENSIONS] == {"credProtect": 3}
    phone_without_uv = Info.from_dict({**PHONE_INFO, 4: {"rk": True, "up": True}})
    with pytest.raises(UserVerificationUnavailable) as refused:
        prepared.ctap_request_for(phone_without_uv)
    assert refused.value.feature == "uv"


def test_empty_algorithm_list_means_es256_and_rs256() -> None:
    body = ctap_map(
        prepare_make_credential(
            creation(pubKeyCredParams=[]), "https://example.com"
        ).ctap_request_for(PHONE_INFO)
    )
    assert [p["alg"] for p in body[MakeCredentialKey.PUB_KEY_CRED_PARAMS]] == [-7, -257]


def test_get_assertion_request_bytes() -> None:
    allow = [{"type": "public-key", "id": websafe_encode(b"cred"), "transports": ["hybrid"]}]
    prepared = prepare_get_assertion(
        {"publicKey": request(allowCredentials=allow, userVerification="discouraged")},
        "https://example.com",
    )
    assert (prepared.kind, prepared.qr_request_type) == ("get", "ga")
    assert prepared.ctap_request_for(PHONE_INFO)[0] == CtapCommand.GET_ASSERTION
    body = ctap_map(prepared.ctap_request_for(PHONE_INFO))
    assert body == {
        GetAssertionKey.RP_ID: "example.com",
        GetAssertionKey.CLIENT_DATA_HASH: sha256(prepared.client_data),
        GetAssertionKey.ALLOW_LIST: [{"id": b"cred", "type": "public-key"}],
    }
    assert prepared.allow_credentials == (b"cred",)
    assert CollectedClientData(bytes(prepared.client_data)).type == "webauthn.get"


def test_discoverable_get_assertion_omits_empty_allow_list() -> None:
    body = ctap_map(
        prepare_get_assertion(request(allowCredentials=[]), "https://example.com").ctap_request_for(
            PHONE_INFO
        )
    )
    ga = GetAssertionKey
    assert body == {
        ga.RP_ID: "example.com",
        ga.CLIENT_DATA_HASH: body[ga.CLIENT_DATA_HASH],
        ga.OPTIONS: {"uv": True},
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (creation(challenge=None), "no 'challenge'"),
        (creation(rp=None), "no 'rp'"),
        (creation(rp={"id": "example.com"}), "no 'rp.name'"),
        (creation(user={"name": "x"}), "no 'user.id'"),
        (creation(user={"id": websafe_encode(b"x" * 65), "name": "x"}), "1 to 64 bytes"),
        (creation(pubKeyCredParams="ES256"), "'pubKeyCredParams' must be a list"),
        (creation(pubKeyCredParams=[{"type": "public-key", "alg": "x"}]), "malformed"),
        (creation(challenge=42), "'challenge' must be a str"),
    ],
)
def test_bad_creation_options(options: Any, message: str) -> None:
    with pytest.raises(InvalidOptions, match=message) as caught:
        prepare_make_credential(options, "https://example.com")
    assert "fix the options" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (request(challenge=None), "no 'challenge'"),
        (request(rpId=7), "'rpId' must be a str"),
        (request(allowCredentials="nope"), "malformed"),
    ],
)
def test_bad_request_options(options: Any, message: str) -> None:
    with pytest.raises(InvalidOptions, match=message):
        prepare_get_assertion(options, "https://example.com")


@pytest.mark.parametrize(
    ("rp_id", "origin", "expected"),
    [
        ("example.com", "https://example.com", "example.com"),
        ("example.com", "https://login.example.com:8443", "example.com"),
        (None, "https://login.example.com", "login.example.com"),
        ("localhost", "http://localhost:8080", "localhost"),
        (None, "https://EXAMPLE.com/", "example.com"),
    ],
)
def test_valid_rp_ids(rp_id: str | None, origin: str, expected: str) -> None:
    assert effective_rp_id(rp_id, origin) == expected


@pytest.mark.parametrize(
    ("rp_id", "origin", "message"),
    [
        ("evil.com", "https://example.com", "not valid for the origin"),
        ("login.example.com", "https://example.com", "not valid for the origin"),
        ("com", "https://example.com", "not valid for the origin"),
        ("co.uk", "https://example.co.uk", "not valid for the origin"),
        ("", "https://example.com", "not valid for the origin"),
        ("example.com", "http://example.com", "not a secure origin"),
        ("example.com", "ftp://example.com", "not a secure origin"),
        ("example.com", "https://example.com/login", "not an origin"),
        ("example.com", "https://example.com?x=1", "not an origin"),
        ("example.com", "https://user@example.com", "not an origin"),
        ("example.com", "example.com", "not an origin"),
        ("example.com", "https://example.com:99999", "not an origin"),
    ],
)
def test_rp_id_origin_mismatch(rp_id: str, origin: str, message: str) -> None:
    with pytest.raises(InvalidOrigin, match=message):
        effective_rp_id(rp_id, origin)


def test_mismatch_is_refused_by_prepare_too() -> None:
    with pytest.raises(InvalidOrigin):
        prepare_make_credential(creation(), "https://attacker.example")
    with pytest.raises(InvalidOrigin):
        prepare_get_assertion(request(), "https://attacker.example")
    with pytest.raises(HybridError):
        prepare_get_assertion(request(), "http://example.com")


def test_client_data_uses_normalized_origin() -> None:
    prepared = prepare_get_assertion(request(), "https://Example.com/")
    assert CollectedClientData(bytes(prepared.client_data)).origin == "https://example.com"
    assert prepared.origin == "https://example.com"
