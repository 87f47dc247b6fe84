"""SoftwareAuthenticator: CTAP2 command logic, consent order, and refusal of malformed input."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from fido2 import cbor
from fido2.cose import ES256
from fido2.ctap2.base import AssertionResponse, AttestationResponse, Info
from fido2.utils import sha256
from fido2.webauthn import Aaguid, AuthenticatorData
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.authenticator import ApprovalRequest, SoftwareAuthenticator, approve_all
from hybrid.ctap import CtapStatus, decode_cbor_map
from tests.authenticator.recorder import Recorder

FLAG = AuthenticatorData.FLAG
CDH = b"\x11" * 32
RP = "example.com"

# /work/shared/docs/test-vectors.md §J, J4 without the leading framing byte 0x01.
J4 = bytes.fromhex(
    "01a5015820687134968222ec17202e42505f8ed2b16ae22f16bb05b88c25db9e602645f14102a2626964"
    "69746573742e63746170646e616d6569746573742e6374617003a362696458202b6689bb18f4169f069f"
    "bcdf50cb6ea3c60a861b9a7b63946983e0b577b78c70646e616d6571746573746374617040637461702e"
    "636f6d6b646973706c61794e616d65695465737420437461700483a263616c672664747970656a707562"
    "6c69632d6b6579a263616c6739010064747970656a7075626c69632d6b6579a263616c67382464747970"
    "656a7075626c69632d6b657907a162726bf5"
)


def mc_params(user_id: bytes = b"user-1", **changes: Any) -> dict[int, Any]:
    """A valid makeCredential map; `k5=...` sets key 5, `k5=DROP` removes it."""
    params: dict[int, Any] = {
        1: CDH,
        2: {"id": RP, "name": "Example"},
        3: {"id": user_id, "name": "alice@example.com", "displayName": "Alice"},
        4: [{"alg": -7, "type": "public-key"}],
        7: {"rk": True},
    }
    return _apply(params, changes)


DROP = object()


def _apply(params: dict[int, Any], changes: dict[str, Any]) -> dict[int, Any]:
    for name, value in changes.items():
        key = int(name.removeprefix("k"))
        if value is DROP:
            del params[key]
        else:
            params[key] = value
    return params


def mc(user_id: bytes = b"user-1", **changes: Any) -> bytes:
    return b"\x01" + cbor.encode(mc_params(user_id, **changes))


def ga(allow: list[bytes] | None = None, **changes: Any) -> bytes:
    params: dict[int, Any] = {1: RP, 2: CDH}
    if allow is not None:
        params[3] = [{"id": i, "type": "public-key"} for i in allow]
    return b"\x02" + cbor.encode(_apply(params, changes))


async def register(auth: SoftwareAuthenticator, **kwargs: Any) -> AttestationResponse:
    reply = await auth.handle_ctap(mc(**kwargs))
    assert reply[0] == 0, hex(reply[0])
    return AttestationResponse.from_dict(decode_cbor_map(reply[1:]))


def assertion(reply: bytes) -> AssertionResponse:
    assert reply[0] == 0, hex(reply[0])
    return AssertionResponse.from_dict(decode_cbor_map(reply[1:]))


async def test_j4_vector_is_accepted_as_make_credential() -> None:
    auth = SoftwareAuthenticator(approve=approve_all)
    reply = await auth.handle_ctap(J4)
    assert reply[0] == CtapStatus.SUCCESS
    response = AttestationResponse.from_dict(decode_cbor_map(reply[1:]))
    assert response.fmt == "none"
    assert response.att_stmt == {}
    data = response.auth_data
    assert data.rp_id_hash == sha256(b"test.ctap")
    assert data.flags == FLAG.UP | FLAG.AT  # presence only: nobody verified the user
    assert data.counter == 0
    assert data.credential_data is not None
    assert data.credential_data.aaguid == Aaguid.NONE
    assert isinstance(data.credential_data.public_key, ES256)  # -7 picked before -257, -37
    (stored,) = auth.store.for_rp("test.ctap")
    assert stored.credential_id == data.credential_data.credential_id
    assert (stored.user_name, stored.user_display_name) == ("testctap@ctap.com", "Test Ctap")


async def test_get_info() -> None:
    auth = SoftwareAuthenticator(approve=approve_all)
    assert await auth.handle_ctap(b"\x04") == b"\x00" + auth.get_info_cbor()
    info = Info.from_dict(decode_cbor_map(auth.get_info_cbor()))
    assert info.versions == ["FIDO_2_0", "FIDO_2_1"]
    assert info.aaguid == Aaguid.NONE
    assert info.options == {"rk": True, "up": True}  # no "uv": this phone cannot verify
    assert info.transports == ["hybrid", "internal"]
    assert info.algorithms == [{"alg": -7, "type": "public-key"}]


async def test_first_supported_algorithm_in_rp_order() -> None:
    auth = SoftwareAuthenticator(approve=approve_all)
    algorithms = [
        {"alg": -257, "type": "public-key"},
        {"alg": -7, "type": "future-type"},
        {"alg": -7, "type": "public-key"},
    ]
    data = (await register(auth, k4=algorithms)).auth_data
    assert data.credential_data is not None
    assert data.credential_data.public_key[3] == -7


async def test_unsupported_algorithm_is_refused_before_asking() -> None:
    approve = Recorder()
    auth = SoftwareAuthenticator(approve=approve)
    algorithms = [{"alg": -257, "type": "public-key"}, {"alg": -8, "type": "public-key"}]
    assert await auth.handle_ctap(mc(k4=algorithms)) == bytes([CtapStatus.UNSUPPORTED_ALGORITHM])
    assert approve.requests == []
    assert len(auth.store) == 0


async def async_decline(request: ApprovalRequest) -> bool:
    await asyncio.sleep(0)
    return False


def raising(request: ApprovalRequest) -> bool:
    raise RuntimeError("secret-detail-in-exception")


@pytest.mark.parametrize(
    "approve",
    [Recorder(False), async_decline, raising, Recorder(1), Recorder(None)],
    ids=["plain-false", "async-false", "raises", "truthy-int", "none"],
)
async def test_declined_make_credential(
    approve: Callable[[ApprovalRequest], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = SoftwareAuthenticator(approve=approve)
    assert await auth.handle_ctap(mc()) == bytes([CtapStatus.OPERATION_DENIED])
    assert len(auth.store) == 0
    assert "secret-detail-in-exception" not in caplog.text


async def test_raising_approve_is_logged_by_type(caplog: pytest.LogCaptureFixture) -> None:
    auth = SoftwareAuthenticator(approve=raising)
    assert await auth.handle_ctap(ga()) == bytes([CtapStatus.OPERATION_DENIED])
    assert "approval callback raised RuntimeError" in caplog.text
    assert "secret-detail-in-exception" not in caplog.text


async def test_async_approve_sees_the_request() -> None:
    seen: list[ApprovalRequest] = []

    async def approve(request: ApprovalRequest) -> bool:
        seen.append(request)
        return True

    auth = SoftwareAuthenticator(approve=approve)
    await register(auth)
    assert seen == [ApprovalRequest("create", RP, "alice@example.com", "Alice")]


async def test_excluded_credential_asks_first() -> None:
    approve = Recorder()
    auth = SoftwareAuthenticator(approve=approve)
    data = (await register(auth)).auth_data
    assert data.credential_data is not None
    exclude = [{"id": data.credential_data.credential_id, "type": "public-key"}]

    reply = await auth.handle_ctap(mc(b"user-2", k5=exclude))
    assert reply == bytes([CtapStatus.CREDENTIAL_EXCLUDED])
    assert [r.kind for r in approve.requests] == ["create", "create"]

    approve.answer = False  # a declined user learns nothing about the exclusion
    reply = await auth.handle_ctap(mc(b"user-2", k5=exclude))
    assert reply == bytes([CtapStatus.OPERATION_DENIED])
    assert len(auth.store) == 1


async def test_same_user_replaces_old_credential() -> None:
    auth = SoftwareAuthenticator(approve=approve_all)
    await register(auth)
    await register(auth)
    assert len(auth.store) == 1
    await register(auth, user_id=b"someone-else")
    assert len(auth.store) == 2


async def test_discoverable_assertion_picks_newest_and_names_user() -> None:
    auth = SoftwareAuthenticator(approve=approve_all)
    await register(auth, user_id=b"old")
    newest = (await register(auth, user_id=b"new")).auth_data.credential_data
    assert newest is not None
    response = assertion(await auth.handle_ctap(ga()))
    assert response.credential == {"id": newest.credential_id, "type": "public-key"}
    assert response.user == {"id": b"new", "name": "alice@example.com", "displayName": "Alice"}
    assert response.number_of_credentials is None
    assert response.auth_data.flags == FLAG.UP
    response.verify(CDH, newest.public_key)


async def test_allow_list_assertion_counter_increments() -> None:
    auth = SoftwareAuthenticator(approve=approve_all)
    created = (await register(auth)).auth_data.credential_data
    assert created is not None
    counters = []
    for _ in range(3):
        response = assertion(await auth.handle_ctap(ga([b"unknown", created.credential_id])))
        assert response.user == {"id": b"user-1"}  # no names when the site named the passkey
        response.verify(CDH, created.public_key)
        counters.append(response.auth_data.counter)
    assert counters == [1, 2, 3]


@pytest.mark.parametrize("allow", [None, [b"not-a-known-id"]], ids=["discoverable", "allow"])
async def test_no_credentials_after_approval(allow: list[bytes] | None) -> None:
    approve = Recorder()
    auth = SoftwareAuthenticator(approve=approve)
    assert await auth.handle_ctap(ga(allow)) == bytes([CtapStatus.NO_CREDENTIALS])
    assert approve.requests == [ApprovalRequest("get", RP, None, None)]
    approve.answer = False
    assert await auth.handle_ctap(ga(allow)) == bytes([CtapStatus.OPERATION_DENIED])


async def test_other_rp_credentials_do_not_match() -> None:
    auth = SoftwareAuthenticator(approve=approve_all)
    await register(auth)
    assert await auth.handle_ctap(ga(k1="other.example")) == bytes([CtapStatus.NO_CREDENTIALS])


E = CtapStatus


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"", E.INVALID_LENGTH),
        (b"\x04\x00", E.INVALID_LENGTH),
        (b"\x06\xa0", E.INVALID_COMMAND),
        (b"\x08", E.INVALID_COMMAND),
        (b"\xff", E.INVALID_COMMAND),
        (b"\x01", E.MISSING_PARAMETER),
        (b"\x01\xa1", E.INVALID_CBOR),
        (b"\x01\xa0\x00", E.INVALID_CBOR),
        (b"\x01\xbf\xff", E.INVALID_CBOR),
        (b"\x01\xc1\x01", E.INVALID_CBOR),
        (b"\x01\xa2\x01\x01\x01\x02", E.INVALID_CBOR),
        (b"\x01" + b"\x81" * 40 + b"\x01", E.INVALID_CBOR),
        (b"\x01\x80", E.CBOR_UNEXPECTED_TYPE),
        (b"\x01\xa0", E.MISSING_PARAMETER),
        (b"\x02\xa0", E.MISSING_PARAMETER),
        (mc(k1=DROP), E.MISSING_PARAMETER),
        (mc(k2=DROP), E.MISSING_PARAMETER),
        (mc(k3=DROP), E.MISSING_PARAMETER),
        (mc(k4=DROP), E.MISSING_PARAMETER),
        (mc(k1="not bytes"), E.CBOR_UNEXPECTED_TYPE),
        (mc(k1=b""), E.INVALID_LENGTH),
        (mc(k1=CDH[:31]), E.INVALID_LENGTH),
        (mc(k1=CDH + b"\x00"), E.INVALID_LENGTH),
        (mc(k2=["not a map"]), E.CBOR_UNEXPECTED_TYPE),
        (mc(k2={"name": "no id"}), E.MISSING_PARAMETER),
        (mc(k2={"id": ""}), E.INVALID_PARAMETER),
        (mc(k3={"id": b"x" * 65}), E.INVALID_PARAMETER),
        (mc(k3={"id": "text id"}), E.CBOR_UNEXPECTED_TYPE),
        (mc(k4=[{"alg": True, "type": "public-key"}]), E.CBOR_UNEXPECTED_TYPE),
        (mc(k4=[{"type": "public-key"}]), E.MISSING_PARAMETER),
        (mc(k4=[]), E.UNSUPPORTED_ALGORITHM),
        (mc(k5=[{"id": "text", "type": "public-key"}]), E.CBOR_UNEXPECTED_TYPE),
        (mc(k6=[]), E.CBOR_UNEXPECTED_TYPE),
        (mc(k7={"rk": 1}), E.CBOR_UNEXPECTED_TYPE),
        (mc(k7={"up": False}), E.INVALID_OPTION),
        (mc(k8=b"pin", k9=2), E.PIN_AUTH_INVALID),
        (mc(k10=1), E.INVALID_PARAMETER),
        (ga(k1=b"bytes rp"), E.CBOR_UNEXPECTED_TYPE),
        (ga(k1=DROP), E.MISSING_PARAMETER),
        (ga(k2=DROP), E.MISSING_PARAMETER),
        (ga(k2=CDH[:31]), E.INVALID_LENGTH),
        (ga(k2=CDH * 2), E.INVALID_LENGTH),
        (ga(k3="x"), E.CBOR_UNEXPECTED_TYPE),
        (ga(k3=[{"type": "public-key"}]), E.MISSING_PARAMETER),
        (ga(k5={"rk": True}), E.UNSUPPORTED_OPTION),
        (ga(k5={"up": False}), E.UNSUPPORTED_OPTION),
        (ga(k6=b"", k7=1), E.PIN_AUTH_INVALID),
    ],
)
async def test_malformed_requests_get_the_right_status(
    request_bytes: bytes, status: CtapStatus
) -> None:
    auth = SoftwareAuthenticator(approve=approve_all)
    assert await auth.handle_ctap(request_bytes) == bytes([status])
    assert len(auth.store) == 0


async def test_unknown_parameters_and_extensions_are_ignored() -> None:
    auth = SoftwareAuthenticator(approve=approve_all)
    reply = await auth.handle_ctap(mc(k6={"credProtect": 2}, k99="future"))
    assert reply[0] == CtapStatus.SUCCESS


async def test_secrets_stay_out_of_logs_and_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = SoftwareAuthenticator(approve=approve_all)
    await register(auth)
    assertion(await auth.handle_ctap(ga()))
    (credential,) = auth.store.for_rp(RP)
    der = credential.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    scalar = credential.private_key.private_numbers().private_value
    for text in (caplog.text, repr(credential), repr(auth.store), repr(auth)):
        assert der.hex() not in text
        assert str(scalar) not in text
        assert "private_key" not in text


def _random_cbor() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.integers(-(2**64), 2**64 - 1),
        st.binary(max_size=40),
        st.text(max_size=20),
        st.booleans(),
        st.none(),
        st.sampled_from(["id", "name", "alg", "type", "public-key", "rk", "up", "uv"]),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.integers(-2, 12), st.text(max_size=8)), inner, max_size=6),
        ),
        max_leaves=20,
    )


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.tuples(st.sampled_from([0x01, 0x02, 0x04]), st.binary(max_size=200)).map(
            lambda t: bytes([t[0]]) + t[1]
        ),
        st.tuples(st.sampled_from([0x01, 0x02]), _random_cbor()).map(
            lambda t: bytes([t[0]]) + cbor2.dumps(t[1])
        ),
    )
)
def test_any_bytes_give_a_status_never_an_exception(request_bytes: bytes) -> None:
    auth = SoftwareAuthenticator(approve=approve_all)
    loop = asyncio.new_event_loop()
    try:
        reply = loop.run_until_complete(auth.handle_ctap(request_bytes))
    finally:
        loop.close()
    assert reply
    assert reply[0] in {s.value for s in CtapStatus}
    assert reply[0] != CtapStatus.OTHER  # OTHER would mean an unexpected internal failure
    if reply[0] != CtapStatus.SUCCESS:
        assert len(reply) == 1
