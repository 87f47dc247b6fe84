"""Extensions and user verification, both roles for real: `HybridClient` ↔ tunnel server process
↔ `answer_qr` over bumble, every credential checked by `fido2.server.Fido2Server`."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import pytest
from fido2 import cbor
from fido2.server import Fido2Server
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticatorData,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hybrid.authenticator import SoftwareAuthenticator, approve_all
from hybrid.authenticator.extensions import MAX_LARGE_BLOB_BYTES
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ctap import decode_cbor_map
from hybrid.errors import PeerError, PeerReason, UserVerificationUnavailable
from hybrid.transport import MESSAGE_TOO_BIG
from hybrid.webauthn.extensions import PhoneLacksExtension, compress_blob
from tests.conftest import RP_ID, USER, ClientFactory
from tests.e2e.phones import verifying_phone
from tests.e2e.test_ceremonies import PhoneRunner

B64 = websafe_encode


@dataclass
class Rig:
    """The shared parts of a two-role ceremony: client factory, radio, server, relying party."""

    make_client: ClientFactory
    advertiser: BumbleAdvertiser
    tunnel_url: str
    relying_party: Fido2Server

    def phone(self, authenticator: SoftwareAuthenticator) -> PhoneRunner:
        return PhoneRunner(authenticator, self.advertiser, self.tunnel_url)


@pytest.fixture
def rig(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> Rig:
    return Rig(make_client, advertiser, tunnel_url, relying_party)


async def _register(
    phone: PhoneRunner,
    rig: Rig,
    extensions: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[AttestedCredentialData, dict[str, Any], AuthenticatorData]:
    options, state = rig.relying_party.register_begin(
        USER, resident_key_requirement=ResidentKeyRequirement.REQUIRED, **kwargs
    )
    public_key = dict(options["publicKey"]) | {"extensions": extensions or {}}
    credential = await rig.make_client().make_credential(public_key, phone)
    assert (await phone.result()).status == 0
    auth_data = rig.relying_party.register_complete(state, credential)
    assert auth_data.credential_data is not None
    return auth_data.credential_data, credential, auth_data


async def _sign_in(
    phone: PhoneRunner,
    rig: Rig,
    credential: AttestedCredentialData,
    extensions: dict[str, Any] | None = None,
    allow: bool = True,
) -> dict[str, Any]:
    options, state = rig.relying_party.authenticate_begin([credential] if allow else [])
    public_key = dict(options["publicKey"]) | {"extensions": extensions or {}}
    assertion = await rig.make_client().get_assertion(public_key, phone)
    assert (await phone.result()).status == 0
    rig.relying_party.authenticate_complete(state, [credential], assertion)
    return assertion


def _expected_prf(phone: SoftwareAuthenticator, credential_id: bytes, value: bytes) -> str:
    """HMAC-SHA256(the credential's PRF secret, SHA-256("WebAuthn PRF" 0x00 value)), here."""
    (stored,) = phone.store.for_rp(RP_ID, [credential_id])
    assert stored.prf_secret is not None
    salt = hashlib.sha256(b"WebAuthn PRF\x00" + value).digest()
    return B64(hmac.new(stored.prf_secret, salt, hashlib.sha256).digest())


async def test_default_phone_works_with_default_options(rig: Rig) -> None:
    """A phone without `uv`, a site with every default ("preferred"): registered and signed in,
    also discoverably, because no credProtect level the phone cannot satisfy was asked for."""
    phone = rig.phone(SoftwareAuthenticator(approve=approve_all))
    credential, _, auth_data = await _register(phone, rig)
    assert not auth_data.is_user_verified() and auth_data.extensions is None
    for allow in (False, True):
        assertion = await _sign_in(phone, rig, credential, allow=allow)
        signed = AuthenticatorData(websafe_decode(assertion["response"]["authenticatorData"]))
        assert not signed.is_user_verified()


async def test_verifying_phone_gets_uv_and_chromium_cred_protect(rig: Rig) -> None:
    phone = rig.phone(verifying_phone())
    credential, result, auth_data = await _register(phone, rig)
    assert auth_data.is_user_verified() and auth_data.extensions == {"credProtect": 3}
    assert result["clientExtensionResults"] == {}  # credProtect has no client output
    assertion = await _sign_in(phone, rig, credential, allow=False)
    assert AuthenticatorData(
        websafe_decode(assertion["response"]["authenticatorData"])
    ).is_user_verified()


async def test_uv_required_with_a_phone_that_cannot_verify_sends_nothing(rig: Rig) -> None:
    phone = rig.phone(SoftwareAuthenticator(approve=approve_all))
    options, _ = rig.relying_party.register_begin(
        USER, user_verification=UserVerificationRequirement.REQUIRED
    )
    with pytest.raises(UserVerificationUnavailable) as refused:
        await rig.make_client().make_credential(dict(options["publicKey"]), phone)
    assert refused.value.feature == "uv"
    # The phone got no request and the desktop's shutdown message, not a dropped tunnel.
    result = await phone.result()
    assert (result.command, result.status) == (None, None)


@pytest.mark.parametrize("uv", [UserVerificationRequirement.DISCOURAGED, None])
async def test_uv_required_cred_protect_is_made_with_uv_whatever_the_site_set(
    rig: Rig, uv: UserVerificationRequirement | None
) -> None:
    """As Chromium: "userVerificationRequired" raises userVerification to "required"; the phone
    verifies, the passkey is level 3, and a sign-in with UV finds it."""
    phone = rig.phone(verifying_phone())
    policy = {"credentialProtectionPolicy": "userVerificationRequired"}
    credential, _, auth_data = await _register(phone, rig, policy, user_verification=uv)
    assert auth_data.is_user_verified() and auth_data.extensions == {"credProtect": 3}
    assertion = await _sign_in(phone, rig, credential, allow=False)  # "preferred": uv sent
    signed = AuthenticatorData(websafe_decode(assertion["response"]["authenticatorData"]))
    assert signed.is_user_verified()


async def test_uv_required_cred_protect_with_a_phone_that_cannot_verify_sends_nothing(
    rig: Rig,
) -> None:
    phone = rig.phone(SoftwareAuthenticator(approve=approve_all))
    options, _ = rig.relying_party.register_begin(
        USER, resident_key_requirement=ResidentKeyRequirement.REQUIRED
    )  # userVerification "preferred"
    public_key = dict(options["publicKey"]) | {
        "extensions": {"credentialProtectionPolicy": "userVerificationRequired"}
    }
    with pytest.raises(UserVerificationUnavailable) as refused:
        await rig.make_client().make_credential(public_key, phone)
    assert refused.value.feature == "uv"
    result = await phone.result()
    assert (result.command, result.status) == (None, None)  # no request reached the phone
    assert phone.auth.store.for_rp(RP_ID) == []


async def test_enforced_cred_protect_is_refused_before_sending_to_a_bare_phone(rig: Rig) -> None:
    class NoCredProtectPhone(SoftwareAuthenticator):
        """A phone whose getInfo does not list credProtect (as Android's does not)."""

        def get_info_cbor(self) -> bytes:
            info = decode_cbor_map(super().get_info_cbor())
            info[2] = [name for name in info[2] if name != "credProtect"]
            return cbor.encode(info)

    phone = rig.phone(NoCredProtectPhone(approve=approve_all))
    options, _ = rig.relying_party.register_begin(
        USER, resident_key_requirement=ResidentKeyRequirement.REQUIRED
    )
    public_key = dict(options["publicKey"]) | {
        "extensions": {
            "credentialProtectionPolicy": "userVerificationOptionalWithCredentialIDList",
            "enforceCredentialProtectionPolicy": True,
        }
    }
    with pytest.raises(PhoneLacksExtension) as refused:
        await rig.make_client().make_credential(public_key, phone)
    assert refused.value.extension == "credProtect"
    assert (await phone.result()).command is None


async def test_prf_at_registration_and_sign_in(rig: Rig) -> None:
    authenticator = SoftwareAuthenticator(approve=approve_all)  # PRF needs no verification
    phone = rig.phone(authenticator)
    first = {"first": B64(b"vault key")}
    credential, result, _ = await _register(phone, rig, {"prf": {"eval": first}})
    expected = _expected_prf(authenticator, credential.credential_id, b"vault key")
    assert result["clientExtensionResults"] == {
        "prf": {"enabled": True, "results": {"first": expected}}
    }
    both = {"first": B64(b"vault key"), "second": B64(b"next key")}
    by_credential = {"evalByCredential": {B64(credential.credential_id): both}}
    assertion = await _sign_in(phone, rig, credential, {"prf": by_credential})
    second = _expected_prf(authenticator, credential.credential_id, b"next key")
    assert assertion["clientExtensionResults"] == {
        "prf": {"results": {"first": expected, "second": second}}
    }


async def test_large_blob_support_write_and_read(rig: Rig) -> None:
    phone = rig.phone(verifying_phone())
    credential, result, _ = await _register(phone, rig, {"largeBlob": {"support": "required"}})
    assert result["clientExtensionResults"] == {"largeBlob": {"supported": True}}
    blob = b"certificate " * 40
    written = await _sign_in(phone, rig, credential, {"largeBlob": {"write": B64(blob)}})
    assert written["clientExtensionResults"] == {"largeBlob": {"written": True}}
    read = await _sign_in(phone, rig, credential, {"largeBlob": {"read": True}})
    assert read["clientExtensionResults"] == {"largeBlob": {"blob": B64(blob)}}


async def test_large_blob_over_the_phones_limit_signs_in_unwritten(rig: Rig) -> None:
    """WebAuthn L3 §10.1.5: the sign-in succeeds with `written: false`, the old blob stays."""
    phone = rig.phone(verifying_phone())
    credential, _, _ = await _register(phone, rig, {"largeBlob": {"support": "required"}})
    kept = b"kept " * 50
    await _sign_in(phone, rig, credential, {"largeBlob": {"write": B64(kept)}})
    blob = hashlib.shake_256(b"incompressible").digest(MAX_LARGE_BLOB_BYTES + 512)
    assert len(compress_blob(blob)) > MAX_LARGE_BLOB_BYTES  # over the phone's storage limit
    written = await _sign_in(phone, rig, credential, {"largeBlob": {"write": B64(blob)}})
    assert written["clientExtensionResults"] == {"largeBlob": {"written": False}}
    read = await _sign_in(phone, rig, credential, {"largeBlob": {"read": True}})
    assert read["clientExtensionResults"] == {"largeBlob": {"blob": B64(kept)}}


async def test_large_blob_too_big_for_the_tunnel_is_named(rig: Rig) -> None:
    phone = rig.phone(verifying_phone())
    credential, _, _ = await _register(phone, rig, {"largeBlob": {"support": "required"}})
    blob = hashlib.shake_256(b"incompressible").digest(64 * 1024)  # over the 16 KiB default
    with pytest.raises(PeerError) as caught:
        await _sign_in(phone, rig, credential, {"largeBlob": {"write": B64(blob)}})
    assert caught.value.reason is PeerReason.CLOSED
    assert caught.value.close_code == MESSAGE_TOO_BIG  # the tunnel server refused the request
    assert "unlock the phone" not in str(caught.value)  # not blamed on the phone
