"""Desktop ⇄ phone round trips verified by a real relying party (fido2.server.Fido2Server)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fido2 import cbor
from fido2.server import Fido2Server
from fido2.utils import websafe_decode
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticatorData,
    PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialType,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hybrid.authenticator import ApprovalRequest, SoftwareAuthenticator, approve_all
from hybrid.ctap import GetAssertionResponseKey, decode_cbor_map
from hybrid.errors import (
    CredentialExcluded,
    NoCredentials,
    OperationDenied,
    ProtocolError,
    UnsupportedAlgorithm,
)
from hybrid.webauthn import (
    UnknownCredential,
    finish_get_assertion,
    finish_make_credential,
    prepare_get_assertion,
    prepare_make_credential,
)
from tests.conftest import PHONE_INFO

ORIGIN = "https://example.com"
ALICE = PublicKeyCredentialUserEntity(id=b"alice-id", name="alice", display_name="Alice")


@pytest.fixture
def server() -> Fido2Server:
    return Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))


def as_json(options: Any) -> str:
    """What a site sends to the browser: the Level 3 JSON of options["publicKey"]."""
    return json.dumps(dict(options["publicKey"]))


async def register(
    server: Fido2Server,
    auth: SoftwareAuthenticator,
    user: PublicKeyCredentialUserEntity = ALICE,
    **begin: Any,
) -> tuple[AttestedCredentialData, dict[str, Any]]:
    options, state = server.register_begin(user, **begin)
    prepared = prepare_make_credential(as_json(options), ORIGIN)
    credential = finish_make_credential(
        prepared, await auth.handle_ctap(prepared.ctap_request_for(PHONE_INFO))
    )
    auth_data = server.register_complete(state, credential)
    assert auth_data.credential_data is not None
    return auth_data.credential_data, credential


async def authenticate(
    server: Fido2Server,
    auth: SoftwareAuthenticator,
    credentials: list[AttestedCredentialData],
    allow: list[AttestedCredentialData] | None,
) -> dict[str, Any]:
    options, state = server.authenticate_begin(
        allow, user_verification=UserVerificationRequirement.REQUIRED
    )
    prepared = prepare_get_assertion(as_json(options), ORIGIN)
    result = finish_get_assertion(
        prepared, await auth.handle_ctap(prepared.ctap_request_for(PHONE_INFO))
    )
    server.authenticate_complete(state, credentials, result)
    return result


async def test_register_then_sign_in_with_and_without_allow_list(server: Fido2Server) -> None:
    auth = SoftwareAuthenticator(verifies_user=True, approve=approve_all)
    credential, registration = await register(
        server,
        auth,
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=UserVerificationRequirement.REQUIRED,
        extensions={"credProps": True},
    )
    json.dumps(registration)  # plain JSON, ready to post to the site
    response = registration["response"]
    assert registration["authenticatorAttachment"] == "cross-platform"
    assert registration["clientExtensionResults"] == {"credProps": {"rk": True}}
    assert response["transports"] == ["hybrid", "internal"]
    assert response["publicKeyAlgorithm"] == -7
    spki = serialization.load_der_public_key(websafe_decode(response["publicKey"]))
    assert (
        spki.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        == b"\x04" + credential.public_key[-2] + credential.public_key[-3]
    )
    assert AuthenticatorData(websafe_decode(response["authenticatorData"])).credential_data

    counters = []
    for allow in (None, [credential], None):
        result = await authenticate(server, auth, [credential], allow)
        assert result["rawId"] == registration["rawId"]
        assert websafe_decode(result["response"]["userHandle"]) == ALICE.id
        data = AuthenticatorData(websafe_decode(result["response"]["authenticatorData"]))
        counters.append(data.counter)
    assert counters == [1, 2, 3]


async def test_cred_props_is_reported_only_when_asked(server: Fido2Server) -> None:
    _, registration = await register(
        server, SoftwareAuthenticator(verifies_user=True, approve=approve_all)
    )
    assert registration["clientExtensionResults"] == {}


async def test_excluded_credential(server: Fido2Server) -> None:
    asked: list[ApprovalRequest] = []

    def approve(request: ApprovalRequest) -> bool:
        asked.append(request)
        return True

    auth = SoftwareAuthenticator(verifies_user=True, approve=approve)
    credential, _ = await register(server, auth)
    options, _ = server.register_begin(ALICE, credentials=[credential])
    prepared = prepare_make_credential(as_json(options), ORIGIN)
    reply = await auth.handle_ctap(prepared.ctap_request_for(PHONE_INFO))
    with pytest.raises(CredentialExcluded) as caught:
        finish_make_credential(prepared, reply)
    assert (caught.value.status, caught.value.rp_id) == (0x19, "example.com")
    assert [r.kind for r in asked] == ["create", "create"]


async def _decline_async(request: ApprovalRequest) -> bool:
    await asyncio.sleep(0)
    return False


@pytest.mark.parametrize("approve", [lambda request: False, _decline_async], ids=["plain", "async"])
async def test_declined_on_the_phone(server: Fido2Server, approve: Any) -> None:
    auth = SoftwareAuthenticator(verifies_user=True, approve=approve_all)
    credential, _ = await register(server, auth)
    declining = SoftwareAuthenticator(store=auth.store, verifies_user=True, approve=approve)

    options, _ = server.authenticate_begin([credential])
    prepared = prepare_get_assertion(as_json(options), ORIGIN)
    with pytest.raises(OperationDenied) as caught:
        finish_get_assertion(
            prepared, await declining.handle_ctap(prepared.ctap_request_for(PHONE_INFO))
        )
    assert caught.value.status == 0x27  # CTAP2_ERR_OPERATION_DENIED

    creation, _ = server.register_begin(ALICE)
    prepared = prepare_make_credential(as_json(creation), ORIGIN)
    with pytest.raises(OperationDenied):
        finish_make_credential(
            prepared, await declining.handle_ctap(prepared.ctap_request_for(PHONE_INFO))
        )


async def test_no_credentials(server: Fido2Server) -> None:
    options, _ = server.authenticate_begin()
    prepared = prepare_get_assertion(as_json(options), ORIGIN)
    reply = await SoftwareAuthenticator(verifies_user=True, approve=approve_all).handle_ctap(
        prepared.ctap_request_for(PHONE_INFO)
    )
    with pytest.raises(NoCredentials) as caught:
        finish_get_assertion(prepared, reply)
    assert (caught.value.status, caught.value.rp_id) == (0x2E, "example.com")


async def test_only_unsupported_algorithms(server: Fido2Server) -> None:
    server.allowed_algorithms = [
        PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=-257)
    ]
    options, _ = server.register_begin(ALICE)
    prepared = prepare_make_credential(as_json(options), ORIGIN)
    with pytest.raises(UnsupportedAlgorithm) as caught:
        finish_make_credential(
            prepared,
            await SoftwareAuthenticator(verifies_user=True, approve=approve_all).handle_ctap(
                prepared.ctap_request_for(PHONE_INFO)
            ),
        )
    assert caught.value.status == 0x26  # CTAP2_ERR_UNSUPPORTED_ALGORITHM


def _without_credential(reply: bytes) -> bytes:
    body = decode_cbor_map(reply[1:])
    del body[GetAssertionResponseKey.CREDENTIAL]
    return reply[:1] + cbor.encode(body)


async def test_omitted_credential_is_taken_from_a_one_entry_allow_list(
    server: Fido2Server,
) -> None:
    auth = SoftwareAuthenticator(verifies_user=True, approve=approve_all)
    credential, _ = await register(server, auth)
    options, state = server.authenticate_begin([credential])
    prepared = prepare_get_assertion(as_json(options), ORIGIN)
    reply = _without_credential(await auth.handle_ctap(prepared.ctap_request_for(PHONE_INFO)))
    result = finish_get_assertion(prepared, reply)
    assert server.authenticate_complete(state, [credential], result) == credential


async def test_omitted_credential_without_a_single_allow_entry_is_refused(
    server: Fido2Server,
) -> None:
    auth = SoftwareAuthenticator(verifies_user=True, approve=approve_all)
    first, _ = await register(server, auth)
    second, _ = await register(server, auth, PublicKeyCredentialUserEntity(id=b"bob", name="b"))
    for allow in (None, [first, second]):
        options, _ = server.authenticate_begin(allow)
        prepared = prepare_get_assertion(as_json(options), ORIGIN)
        reply = _without_credential(await auth.handle_ctap(prepared.ctap_request_for(PHONE_INFO)))
        with pytest.raises(ProtocolError, match="allow list"):
            finish_get_assertion(prepared, reply)


async def test_orphaned_passkey_becomes_unknown_credential(server: Fido2Server) -> None:
    """The site deleted the passkey, the phone still has it: the app raises UnknownCredential."""
    auth = SoftwareAuthenticator(verifies_user=True, approve=approve_all)
    await register(server, auth)
    options, state = server.authenticate_begin()
    prepared = prepare_get_assertion(as_json(options), ORIGIN)
    result = finish_get_assertion(
        prepared, await auth.handle_ctap(prepared.ctap_request_for(PHONE_INFO))
    )
    with pytest.raises(UnknownCredential) as caught:
        try:
            server.authenticate_complete(state, [], result)  # the site's list is now empty
        except ValueError as exc:
            raise UnknownCredential(prepared.rp_id, websafe_decode(result["rawId"])) from exc
    assert caught.value.rp_id == "example.com"
    assert caught.value.credential_id == websafe_decode(result["rawId"])
