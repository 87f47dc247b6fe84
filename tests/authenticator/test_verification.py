"""User verification is claimed only when the approver really verifies (issue 10, item 2).

Responses are checked with python-fido2's parsers and, for the end-to-end cases, by a real
`fido2.server.Fido2Server` that insists on (or does not ask for) the UV flag.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fido2 import cbor
from fido2.ctap2.base import AssertionResponse, AttestationResponse, Info
from fido2.server import Fido2Server
from fido2.webauthn import (
    AuthenticatorData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

import hybrid.authenticator
from hybrid.authenticator import ApprovalRequest, SoftwareAuthenticator, approve_all
from hybrid.ctap import CtapStatus, decode_cbor_map
from hybrid.errors import UserVerificationUnavailable
from hybrid.webauthn import (
    finish_get_assertion,
    finish_make_credential,
    prepare_get_assertion,
    prepare_make_credential,
)
from tests.authenticator.recorder import Recorder

FLAG = AuthenticatorData.FLAG
CDH = b"\x22" * 32
RP = "example.com"
ORIGIN = "https://example.com"
ALICE = PublicKeyCredentialUserEntity(id=b"alice-id", name="alice", display_name="Alice")
REQUIRED = UserVerificationRequirement.REQUIRED
DISCOURAGED = UserVerificationRequirement.DISCOURAGED


def mc(options: dict[str, bool]) -> bytes:
    params: dict[int, Any] = {
        1: CDH,
        2: {"id": RP},
        3: {"id": b"user-1", "name": "alice"},
        4: [{"alg": -7, "type": "public-key"}],
    }
    if options:
        params[7] = options
    return b"\x01" + cbor.encode(params)


def ga(options: dict[str, bool]) -> bytes:
    params: dict[int, Any] = {1: RP, 2: CDH}
    if options:
        params[5] = options
    return b"\x02" + cbor.encode(params)


def flags_of(reply: bytes) -> AuthenticatorData.FLAG:
    assert reply[0] == CtapStatus.SUCCESS, hex(reply[0])
    body = decode_cbor_map(reply[1:])
    if 1 in body and isinstance(body[1], str):  # makeCredential: fmt comes first
        return AttestationResponse.from_dict(body).auth_data.flags
    return AssertionResponse.from_dict(body).auth_data.flags


def test_approve_is_required_and_approve_all_is_the_explicit_yes() -> None:
    with pytest.raises(TypeError):
        SoftwareAuthenticator()
    with pytest.raises(TypeError):
        SoftwareAuthenticator(None, None)
    assert SoftwareAuthenticator(None, approve_all).verifies_user is False  # positional, as before
    assert "approve_all" in hybrid.authenticator.__all__
    assert approve_all(ApprovalRequest("get", RP, None, None)) is True


@pytest.mark.parametrize("verifies_user", [False, True])
def test_get_info_offers_uv_only_when_the_approver_verifies(verifies_user: bool) -> None:
    auth = SoftwareAuthenticator(approve=approve_all, verifies_user=verifies_user)
    info = Info.from_dict(decode_cbor_map(auth.get_info_cbor()))
    expected = {"rk": True, "up": True} | ({"uv": True} if verifies_user else {})
    assert info.options == expected
    assert auth.verifies_user is verifies_user


@pytest.mark.parametrize("request_bytes", [mc({"uv": True}), ga({"uv": True})], ids=["mc", "ga"])
async def test_uv_request_to_a_phone_that_cannot_verify_is_refused(request_bytes: bytes) -> None:
    approve = Recorder()
    auth = SoftwareAuthenticator(approve=approve)
    assert await auth.handle_ctap(request_bytes) == bytes([CtapStatus.UNSUPPORTED_OPTION])
    assert approve.requests == []  # refused before anyone is asked
    assert len(auth.store) == 0


@pytest.mark.parametrize("options", [{}, {"uv": False}], ids=["absent", "false"])
async def test_presence_only_never_sets_uv(options: dict[str, bool]) -> None:
    approve = Recorder()
    auth = SoftwareAuthenticator(approve=approve)
    assert flags_of(await auth.handle_ctap(mc(options))) == FLAG.UP | FLAG.AT
    assert flags_of(await auth.handle_ctap(ga(options))) == FLAG.UP
    assert [r.user_verification for r in approve.requests] == [False, False]


async def test_verifying_phone_sets_uv_on_an_approved_verification() -> None:
    approve = Recorder()
    auth = SoftwareAuthenticator(approve=approve, verifies_user=True)
    assert flags_of(await auth.handle_ctap(mc({"uv": True}))) == FLAG.UP | FLAG.UV | FLAG.AT
    assert flags_of(await auth.handle_ctap(ga({"uv": True}))) == FLAG.UP | FLAG.UV
    assert [(r.kind, r.user_verification) for r in approve.requests] == [
        ("create", True),
        ("get", True),
    ]
    approve.answer = False
    assert await auth.handle_ctap(ga({"uv": True})) == bytes([CtapStatus.OPERATION_DENIED])


async def test_verifying_phone_asked_only_for_presence_does_not_claim_uv() -> None:
    """The approver was told no verification is wanted, so it may have just confirmed."""
    approve = Recorder()
    auth = SoftwareAuthenticator(approve=approve, verifies_user=True)
    assert flags_of(await auth.handle_ctap(mc({}))) == FLAG.UP | FLAG.AT
    assert flags_of(await auth.handle_ctap(ga({}))) == FLAG.UP
    assert [r.user_verification for r in approve.requests] == [False, False]


def _info(auth: SoftwareAuthenticator) -> Info:
    return Info.from_dict(decode_cbor_map(auth.get_info_cbor()))


async def ceremony(auth: SoftwareAuthenticator, uv: UserVerificationRequirement) -> None:
    """Register and sign in through the desktop's prepare/finish, checked by Fido2Server."""
    server = Fido2Server(PublicKeyCredentialRpEntity(id=RP, name="Example"))
    options, state = server.register_begin(
        ALICE, resident_key_requirement=ResidentKeyRequirement.REQUIRED, user_verification=uv
    )
    prepared = prepare_make_credential(json.dumps(dict(options["publicKey"])), ORIGIN)
    reply = await auth.handle_ctap(prepared.ctap_request_for(_info(auth)))
    auth_data = server.register_complete(state, finish_make_credential(prepared, reply))
    assert auth_data.credential_data is not None
    assert auth_data.is_user_verified() is (uv is REQUIRED)

    request, state = server.authenticate_begin(user_verification=uv)
    prepared = prepare_get_assertion(json.dumps(dict(request["publicKey"])), ORIGIN)
    reply = await auth.handle_ctap(prepared.ctap_request_for(_info(auth)))
    result = finish_get_assertion(prepared, reply)
    server.authenticate_complete(state, [auth_data.credential_data], result)


async def test_relying_party_requiring_uv_gets_it_from_a_verifying_phone() -> None:
    await ceremony(SoftwareAuthenticator(approve=approve_all, verifies_user=True), REQUIRED)


async def test_relying_party_not_asking_for_uv_works_with_a_phone_that_cannot_verify() -> None:
    await ceremony(SoftwareAuthenticator(approve=approve_all), DISCOURAGED)


async def test_relying_party_requiring_uv_is_refused_by_a_phone_that_cannot_verify() -> None:
    """The desktop reads the phone's getInfo and sends nothing; the phone would answer 0x2B."""
    with pytest.raises(UserVerificationUnavailable) as refused:
        await ceremony(SoftwareAuthenticator(approve=approve_all), REQUIRED)
    assert refused.value.feature == "uv"
