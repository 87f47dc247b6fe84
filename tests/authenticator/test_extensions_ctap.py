"""prf, credProtect and largeBlob through the phone's CTAP, with the desktop module as the peer.

PRF results are checked against HMAC-SHA256 computed here from the stored secret and the
WebAuthn salt, not against the phone's own functions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fido2 import cbor
from fido2.ctap2.base import AssertionResponse, AttestationResponse
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import AuthenticatorData

from hybrid.authenticator import CredentialStore, SoftwareAuthenticator, approve_all
from hybrid.authenticator.extensions import MAX_LARGE_BLOB_BYTES, MIN_LARGE_BLOB_BYTES
from hybrid.ctap import CtapStatus
from hybrid.webauthn.extensions import compress_blob
from tests.authenticator.extension_roles import CDH, RP, CtapRefused, create, get, phone_info

FLAG = AuthenticatorData.FLAG
ROOT = Path(__file__).resolve().parents[2]


def b64(data: bytes) -> str:
    return websafe_encode(data)


def expected_prf(store: CredentialStore, credential_id: bytes, prf_input: bytes) -> str:
    """HMAC-SHA256(credential's secret, SHA-256("WebAuthn PRF" 0x00 input)), computed here."""
    (credential,) = store.for_rp(RP, [credential_id])
    assert credential.prf_secret is not None
    salt = hashlib.sha256(b"WebAuthn PRF\x00" + prf_input).digest()
    return b64(hmac.new(credential.prf_secret, salt, hashlib.sha256).digest())


def verify_signature(registered: AttestationResponse, asserted: AssertionResponse) -> None:
    credential = registered.auth_data.credential_data
    assert credential is not None
    credential.public_key.verify(asserted.auth_data + CDH, asserted.signature)


async def test_get_info_offers_the_three_extensions() -> None:
    phone = SoftwareAuthenticator(approve=approve_all)
    assert sorted(phone_info(phone).extensions) == ["credProtect", "largeBlob", "prf"]


async def test_prf_two_roles_eval_and_eval_by_credential() -> None:
    phone = SoftwareAuthenticator(approve=approve_all)
    alice = await create(phone, {"prf": {"eval": {"first": b64(b"one")}}}, user_id=b"alice")
    bob = await create(phone, {"prf": {}}, user_id=b"bob")
    a_id, b_id = alice.credential_id, bob.credential_id
    a_one = expected_prf(phone.store, a_id, b"one")
    assert alice.client_outputs == {"prf": {"enabled": True, "results": {"first": a_one}}}
    assert bob.client_outputs == {"prf": {"enabled": True}}
    # PRF outputs are unsigned, and a phone that cannot verify gets no default credProtect.
    assert alice.response.auth_data.extensions is None

    asked = {
        "prf": {
            "eval": {"first": b64(b"one"), "second": b64(b"two")},
            "evalByCredential": {b64(b_id): {"first": b64(b"one")}},
        }
    }
    signed_a = await get(phone, asked, allow=[a_id, b_id])  # newest match: bob
    assert signed_a.response.credential["id"] == b_id
    assert signed_a.client_outputs == {
        "prf": {"results": {"first": expected_prf(phone.store, b_id, b"one")}}
    }
    fallback = {"prf": {"eval": asked["prf"]["eval"]}}
    only_alice = await get(phone, fallback, allow=[a_id])  # eval is the fallback
    verify_signature(alice.response, only_alice.response)
    results = only_alice.client_outputs["prf"]["results"]
    assert results == {"first": a_one, "second": expected_prf(phone.store, a_id, b"two")}
    # Same credential and salt: the same output across ceremonies; other salts and
    # credentials: other outputs.
    assert len({a_one, results["second"], expected_prf(phone.store, b_id, b"one")}) == 3


async def test_prf_does_not_need_uv_and_is_the_same_with_it() -> None:
    store = CredentialStore()
    plain = SoftwareAuthenticator(store, approve=approve_all)
    verifying = SoftwareAuthenticator(store, approve=approve_all, verifies_user=True)
    credential_id = (await create(plain, {"prf": {}})).credential_id
    asked = {"prf": {"eval": {"first": b64(b"salt")}}}
    without_uv = await get(plain, asked, allow=[credential_id])
    with_uv = await get(verifying, asked, allow=[credential_id], user_verification=True)
    assert not without_uv.response.auth_data.flags & FLAG.UV
    assert with_uv.response.auth_data.flags & FLAG.UV
    assert without_uv.client_outputs == with_uv.client_outputs
    assert with_uv.client_outputs["prf"]["results"]["first"] == expected_prf(
        store, credential_id, b"salt"
    )


async def test_prf_output_survives_reopening_the_store_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "passkeys.json"
    phone = SoftwareAuthenticator(path, approve=approve_all)
    registered = await create(phone, {"prf": {"eval": {"first": b64(b"salt")}}})
    here = registered.client_outputs["prf"]["results"]["first"]
    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.authenticator.extension_roles",
            str(path),
            b64(registered.credential_id),
            b64(b"salt"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert worker.stdout.strip() == here
    assert here == expected_prf(CredentialStore(path), registered.credential_id, b"salt")


async def test_a_store_written_before_extensions_loads_without_prf(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    phone = SoftwareAuthenticator(path, approve=approve_all)
    credential_id = (await create(phone, {})).credential_id
    document = json.loads(path.read_text())
    for entry in document["credentials"]:  # the entry as the previous release wrote it
        for name in ("prfSecret", "credProtect", "largeBlob"):
            entry.pop(name, None)
    path.write_text(json.dumps(document))

    reopened = SoftwareAuthenticator(path, approve=approve_all)
    (old,) = reopened.store.for_rp(RP)
    assert old.prf_secret is None and old.cred_protect == 1 and old.large_blob is None
    asked = {"prf": {"eval": {"first": b64(b"salt")}}}
    signed = await get(reopened, asked)  # level 1: discoverable without UV
    assert signed.response.credential["id"] == credential_id
    assert signed.client_outputs == {"prf": {}}  # PRF unavailable, the sign-in still works
    assert signed.response.auth_data.counter == 1


async def test_large_blob_write_persists_and_reads_back_in_a_new_process_view(
    tmp_path: Path,
) -> None:
    path = tmp_path / "passkeys.json"
    phone = SoftwareAuthenticator(path, approve=approve_all)
    registered = await create(phone, {"largeBlob": {"support": "required"}})
    assert registered.client_outputs == {"largeBlob": {"supported": True}}
    credential_id = registered.credential_id

    data = os.urandom(MIN_LARGE_BLOB_BYTES)  # incompressible: the guaranteed size on the wire
    written = await get(phone, {"largeBlob": {"write": b64(data)}}, allow=[credential_id])
    assert written.client_outputs == {"largeBlob": {"written": True}}
    (stored,) = CredentialStore(path).for_rp(RP)  # a fresh view of the file
    assert stored.large_blob is not None and stored.large_blob.original_size == len(data)

    reader = SoftwareAuthenticator(path, approve=approve_all)
    read = await get(reader, {"largeBlob": {"read": True}}, allow=[credential_id])
    assert websafe_decode(read.client_outputs["largeBlob"]["blob"]) == data
    assert read.response.auth_data.counter == 2


async def test_large_blob_over_the_limit_signs_in_without_writing(tmp_path: Path) -> None:
    """WebAuthn L3 §10.1.5: a write the authenticator cannot keep is `written: false`, and the
    assertion is still made; the blob stored earlier stays as it was."""
    path = tmp_path / "passkeys.json"
    phone = SoftwareAuthenticator(path, approve=approve_all)
    registered = await create(phone, {"largeBlob": {"support": "required"}})
    credential_id = registered.credential_id
    kept = b"kept " * 100
    await get(phone, {"largeBlob": {"write": b64(kept)}}, allow=[credential_id])
    too_big = os.urandom(MAX_LARGE_BLOB_BYTES + 1)
    assert len(compress_blob(too_big)) > MAX_LARGE_BLOB_BYTES
    signed = await get(phone, {"largeBlob": {"write": b64(too_big)}}, allow=[credential_id])
    assert signed.client_outputs == {"largeBlob": {"written": False}}
    verify_signature(registered.response, signed.response)
    assert signed.response.auth_data.counter == 2  # a real assertion: the counter stepped

    (stored,) = CredentialStore(path).for_rp(RP)  # a fresh view of the file
    assert stored.sign_count == 2 and stored.large_blob is not None
    read = await get(phone, {"largeBlob": {"read": True}}, allow=[credential_id])
    assert websafe_decode(read.client_outputs["largeBlob"]["blob"]) == kept


async def test_cred_protect_levels_hide_credentials_by_uv_and_allow_list() -> None:
    store = CredentialStore()
    plain = SoftwareAuthenticator(store, approve=approve_all)
    verifying = SoftwareAuthenticator(store, approve=approve_all, verifies_user=True)
    level2 = await create(
        plain,
        {"credentialProtectionPolicy": "userVerificationOptionalWithCredentialIDList"},
        user_id=b"two",
    )
    level3 = await create(
        verifying,
        {"credentialProtectionPolicy": "userVerificationRequired"},
        user_id=b"three",
        user_verification="required",
    )
    for registered, level in ((level2, 2), (level3, 3)):
        auth_data = registered.response.auth_data
        assert auth_data.flags & FLAG.ED and auth_data.extensions == {"credProtect": level}
    two, three = level2.credential_id, level3.credential_id

    # A phone that does not verify its user: level 2 only by ID, level 3 never.
    with pytest.raises(CtapRefused) as discoverable:
        await get(plain)
    assert discoverable.value.status == CtapStatus.NO_CREDENTIALS
    assert (await get(plain, allow=[two])).response.credential["id"] == two
    with pytest.raises(CtapRefused) as by_id:
        await get(plain, allow=[three])
    assert by_id.value.status == CtapStatus.NO_CREDENTIALS
    # Without a uv request the verifying phone verifies nobody either.
    with pytest.raises(CtapRefused) as not_asked:
        await get(verifying, allow=[three])
    assert not_asked.value.status == CtapStatus.NO_CREDENTIALS

    # With UV really done, both are usable, discoverable ones included (newest first).
    verified = await get(verifying, user_verification=True)
    assert verified.response.credential["id"] == three
    assert verified.response.auth_data.flags & FLAG.UV
    verify_signature(level3.response, verified.response)
    by_list = await get(verifying, allow=[two], user_verification=True)
    assert by_list.response.credential["id"] == two


async def test_a_level_3_credential_excludes_only_with_uv() -> None:
    store = CredentialStore()
    verifying = SoftwareAuthenticator(store, approve=approve_all, verifies_user=True)
    level3 = await create(
        verifying,
        {"credentialProtectionPolicy": "userVerificationRequired"},
        user_verification="required",
    )
    exclude = [{"id": level3.credential_id, "type": "public-key"}]
    plain = SoftwareAuthenticator(store, approve=approve_all)
    params: dict[int, object] = {
        1: CDH,
        2: {"id": RP},
        3: {"id": b"other"},
        4: [{"alg": -7, "type": "public-key"}],
        5: exclude,
    }
    assert (await plain.handle_ctap(b"\x01" + cbor.encode(params)))[0] == CtapStatus.SUCCESS
    params[3], params[7] = {"id": b"third"}, {"uv": True}
    excluded = await verifying.handle_ctap(b"\x01" + cbor.encode(params))
    assert excluded == bytes([CtapStatus.CREDENTIAL_EXCLUDED])
