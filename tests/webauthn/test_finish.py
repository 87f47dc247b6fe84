"""CTAP status mapping (hybrid.ctap) and refusing malformed phone replies on the desktop."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from fido2 import cbor
from fido2.utils import websafe_decode
from fido2.webauthn import AttestationObject
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.authenticator import SoftwareAuthenticator, approve_all
from hybrid.ctap import (
    CtapStatus,
    decode_cbor,
    decode_cbor_map,
    error_for_status,
    raise_for_status,
    status_name,
)
from hybrid.errors import (
    CredentialExcluded,
    CtapStatusError,
    HybridError,
    NoCredentials,
    OperationDenied,
    ProtocolError,
    UnsupportedAlgorithm,
)
from hybrid.webauthn import (
    InvalidOptions,
    PreparedRequest,
    finish_get_assertion,
    finish_make_credential,
    prepare_get_assertion,
    prepare_make_credential,
)
from tests.conftest import PHONE_INFO

ORIGIN = "https://example.com"
CREATION = {
    "rp": {"id": "example.com", "name": "Example"},
    "user": {"id": "dXNlcg", "name": "alice", "displayName": "Alice"},
    "challenge": "Y2hhbGxlbmdlY2hhbGxlbmdl",
    "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
}
REQUEST = {"challenge": "Y2hhbGxlbmdlY2hhbGxlbmdl", "rpId": "example.com"}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (CtapStatus.NO_CREDENTIALS, NoCredentials),
        (CtapStatus.OPERATION_DENIED, OperationDenied),
        (CtapStatus.NOT_ALLOWED, OperationDenied),
        (CtapStatus.USER_ACTION_TIMEOUT, OperationDenied),
        (CtapStatus.CREDENTIAL_EXCLUDED, CredentialExcluded),
        (CtapStatus.UNSUPPORTED_ALGORITHM, UnsupportedAlgorithm),
        (CtapStatus.INVALID_CBOR, CtapStatusError),
    ],
)
def test_status_mapping(status: CtapStatus, error: type[CtapStatusError]) -> None:
    raised = error_for_status(status, "example.com")
    assert type(raised) is error
    assert (raised.status, raised.rp_id) == (status, "example.com")
    with pytest.raises(error):
        raise_for_status(status, "example.com")


def test_status_names_and_unknown_statuses() -> None:
    assert status_name(0x2E) == "NO_CREDENTIALS"
    assert status_name(0x12) == "INVALID_CBOR"
    assert status_name(0xF5) == "UNKNOWN"  # vendor range
    vendor = error_for_status(0xF5)
    assert (type(vendor), vendor.status, vendor.rp_id) == (CtapStatusError, 0xF5, None)
    raise_for_status(0)  # success raises nothing


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x02",
        b"\xc1\x01",
        b"\x9f\xff",
        b"\xa2\x01\x01\x01\x02",
        b"\x81" * 40 + b"\x01",
        b"\x5a\xff\xff\xff\xff",
    ],
)
def test_decode_cbor_refuses_non_ctap_cbor(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_cbor(data)


def test_decode_cbor_map_wants_a_map() -> None:
    assert decode_cbor_map(b"\xa1\x01\x02") == {1: 2}
    with pytest.raises(ProtocolError, match="map"):
        decode_cbor_map(b"\x80")


def _prepared_get(**changes: Any) -> PreparedRequest:
    return prepare_get_assertion(dict(REQUEST, **changes), ORIGIN)


async def _real_reply(prepared: PreparedRequest) -> tuple[SoftwareAuthenticator, bytes]:
    auth = SoftwareAuthenticator(verifies_user=True, approve=approve_all)
    registration = prepare_make_credential(CREATION, ORIGIN)
    assert (await auth.handle_ctap(registration.ctap_request_for(PHONE_INFO)))[0] == 0
    return auth, await auth.handle_ctap(prepared.ctap_request_for(PHONE_INFO))


DROP = object()


def _edit(reply: bytes, **changes: Any) -> bytes:
    """Change keys of a CBOR reply: `k3=value` sets key 3, `k3=DROP` removes it."""
    body = decode_cbor_map(reply[1:])
    for name, value in changes.items():
        key = int(name.removeprefix("k"))
        if value is DROP:
            del body[key]
        else:
            body[key] = value
    return reply[:1] + cbor.encode(body)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"k2": b"short"}, "authenticator data"),
        ({"k2": "text"}, "authData"),
        ({"k3": DROP}, "signature"),
        ({"k1": {"type": "public-key"}}, "credential id"),
        ({"k4": {"name": "no id"}}, "user id"),
    ],
)
async def test_malformed_assertion_replies(changes: dict[str, Any], message: str) -> None:
    prepared = _prepared_get()
    _, reply = await _real_reply(prepared)
    with pytest.raises(ProtocolError, match=message):
        finish_get_assertion(prepared, _edit(reply, **changes))


async def test_reply_for_another_site_is_refused() -> None:
    prepared = _prepared_get()
    _, reply = await _real_reply(prepared)
    other = prepare_get_assertion(
        dict(REQUEST, rpId="login.example.com"), "https://login.example.com"
    )
    with pytest.raises(ProtocolError, match="different site"):
        finish_get_assertion(other, reply)


async def test_credential_outside_the_allow_list_is_refused() -> None:
    prepared = _prepared_get(allowCredentials=[{"type": "public-key", "id": "b3RoZXI"}])
    auth, _ = await _real_reply(prepared)
    discoverable = await auth.handle_ctap(_prepared_get().ctap_request_for(PHONE_INFO))
    with pytest.raises(ProtocolError, match="did not ask for"):
        finish_get_assertion(prepared, discoverable)


async def test_discoverable_reply_without_user_is_refused() -> None:
    prepared = _prepared_get()
    _, reply = await _real_reply(prepared)
    with pytest.raises(ProtocolError, match="user handle"):
        finish_get_assertion(prepared, _edit(reply, k4=DROP))


async def test_attestation_is_stripped_unless_asked_for() -> None:
    prepared = prepare_make_credential(CREATION, ORIGIN)
    reply = await SoftwareAuthenticator(verifies_user=True, approve=approve_all).handle_ctap(
        prepared.ctap_request_for(PHONE_INFO)
    )
    packed = _edit(reply, k1="packed", k3={"alg": -7, "sig": b"sig"})
    result = finish_make_credential(prepared, packed)
    attestation = AttestationObject(websafe_decode(result["response"]["attestationObject"]))
    assert (attestation.fmt, dict(attestation.att_stmt)) == ("none", {})

    direct = prepare_make_credential(dict(CREATION, attestation="direct"), ORIGIN)
    reply = await SoftwareAuthenticator(verifies_user=True, approve=approve_all).handle_ctap(
        direct.ctap_request_for(PHONE_INFO)
    )
    result = finish_make_credential(direct, _edit(reply, k1="packed", k3={"sig": b"s"}))
    attestation = AttestationObject(websafe_decode(result["response"]["attestationObject"]))
    assert attestation.fmt == "packed"


async def test_make_credential_reply_without_credential_data_is_refused() -> None:
    prepared = prepare_make_credential(CREATION, ORIGIN)
    auth, _ = await _real_reply(_prepared_get())
    assertion_reply = await auth.handle_ctap(_prepared_get().ctap_request_for(PHONE_INFO))
    auth_data = decode_cbor_map(assertion_reply[1:])[2]
    reply = b"\x00" + cbor.encode({1: "none", 2: auth_data, 3: {}})
    with pytest.raises(ProtocolError, match="attested credential"):
        finish_make_credential(prepared, reply)


def test_wrong_finish_for_the_request_kind() -> None:
    with pytest.raises(InvalidOptions, match="finish_get_assertion"):
        finish_make_credential(_prepared_get(), b"\x00\xa0")
    with pytest.raises(InvalidOptions, match="finish_make_credential"):
        finish_get_assertion(prepare_make_credential(CREATION, ORIGIN), b"\x00\xa0")


@pytest.mark.parametrize("reply", [b"", b"\x00", b"\x00\xff", b"\x00\x80", b"\x00\xa0"])
def test_empty_or_broken_replies(reply: bytes) -> None:
    with pytest.raises(ProtocolError):
        finish_get_assertion(_prepared_get(), reply)
    with pytest.raises(ProtocolError):
        finish_make_credential(prepare_make_credential(CREATION, ORIGIN), reply)


_VALUES = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=10),
    st.integers(-5, 300),
    st.booleans(),
    st.dictionaries(st.sampled_from(["id", "type", "name"]), st.binary(max_size=8), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.dictionaries(st.integers(0, 6), _VALUES, max_size=6).map(
            lambda body: b"\x00" + cbor2.dumps(body)
        ),
    )
)
def test_any_reply_is_a_result_or_a_hybrid_error(reply: bytes) -> None:
    allow = [{"type": "public-key", "id": "Y3JlZA"}]
    cases = [
        (
            prepare_get_assertion(dict(REQUEST, allowCredentials=allow), ORIGIN),
            finish_get_assertion,
        ),
        (prepare_get_assertion(REQUEST, ORIGIN), finish_get_assertion),
        (prepare_make_credential(CREATION, ORIGIN), finish_make_credential),
    ]
    for prepared, finish in cases:
        try:
            result = finish(prepared, reply)
        except HybridError as exc:
            assert str(exc)
        else:
            assert result["type"] == "public-key"
