"""prf and largeBlob with USB keys that lack hmac-secret or large-blob storage, as WebAuthn L3
(§10.1.4, §10.1.5) and the phone path report them; checked by `Fido2Server`."""

from __future__ import annotations

from typing import Any

import pytest
from fido2.server import Fido2Server
from fido2.utils import websafe_encode
from fido2.webauthn import (
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hybrid.authenticator import CredentialStore, SoftwareSecurityKey, StoreCredentialCore
from hybrid.desktop import HybridClient
from hybrid.errors import SecurityKeyError, SecurityKeyReason
from hybrid.status import Stage
from hybrid.webauthn.extensions import CRED_PROTECT
from tests.conftest import ORIGIN, RP_ID, USER
from tests.e2e.keys import Person, UsbPort, ceremony_threads, no_qr

DISCOURAGED = UserVerificationRequirement.DISCOURAGED
PIN = "4711"


async def test_large_blob_on_a_key_without_storage(server: Fido2Server) -> None:
    person = Person()
    with SoftwareSecurityKey.with_store(touch=person.touch) as key:
        client = HybridClient(
            ORIGIN, on_status=person, transports=("usb",), security_keys=UsbPort(key)
        )

        def creation(support: str) -> tuple[dict[str, Any], Any]:
            options, state = server.register_begin(
                USER,
                resident_key_requirement=ResidentKeyRequirement.REQUIRED,
                user_verification=DISCOURAGED,
            )
            return {
                **options["publicKey"],
                "extensions": {"largeBlob": {"support": support}},
            }, state

        required, _ = creation("required")
        with pytest.raises(SecurityKeyError) as caught:
            await client.make_credential(required, no_qr)
        assert caught.value.reason is SecurityKeyReason.UNSUPPORTED  # skipped, not "garbled"
        assert [s.error for s in person.of(Stage.KEY_SKIPPED)] == [caught.value]

        preferred, state = creation("preferred")
        registered = await client.make_credential(preferred, no_qr)
        assert registered["clientExtensionResults"] == {"largeBlob": {"supported": False}}
        credential = server.register_complete(state, registered).credential_data
        assert credential is not None

        for blob, expected in (
            ({"read": True}, {}),
            ({"write": websafe_encode(b"blob")}, {"written": False}),
        ):
            options, state = server.authenticate_begin([credential], user_verification=DISCOURAGED)
            request = {**options["publicKey"], "extensions": {"largeBlob": blob}}
            assertion = await client.get_assertion(request, no_qr)
            server.authenticate_complete(state, [credential], assertion)
            assert assertion["clientExtensionResults"] == {"largeBlob": expected}
    assert ceremony_threads() == []


class NoHmacSecretCore:
    """The project's passkey logic on a key that does not offer hmac-secret (so no prf)."""

    extensions = (CRED_PROTECT,)

    def __init__(self) -> None:
        core = StoreCredentialCore()
        self.aaguid = core.aaguid
        self.algorithms = core.algorithms
        self.make_credential = core.make_credential
        self.get_assertion = core.get_assertion


async def test_prf_on_a_key_without_hmac_secret(server: Fido2Server) -> None:
    prf = {"prf": {"eval": {"first": websafe_encode(b"salt")}}}
    person = Person()
    with SoftwareSecurityKey(NoHmacSecretCore(), touch=person.touch) as key:
        client = HybridClient(
            ORIGIN, on_status=person, transports=("usb",), security_keys=UsbPort(key)
        )
        options, state = server.register_begin(
            USER,
            resident_key_requirement=ResidentKeyRequirement.REQUIRED,
            user_verification=DISCOURAGED,
        )
        registered = await client.make_credential(
            {**options["publicKey"], "extensions": prf}, no_qr
        )
        assert registered["clientExtensionResults"] == {"prf": {"enabled": False}}  # not left out
        credential = server.register_complete(state, registered).credential_data
        assert credential is not None
        request, state = server.authenticate_begin([credential], user_verification=DISCOURAGED)
        assertion = await client.get_assertion({**request["publicKey"], "extensions": prf}, no_qr)
        server.authenticate_complete(state, [credential], assertion)
        assert assertion["clientExtensionResults"] == {"prf": {}}  # as the phone path gives
    assert ceremony_threads() == []


UV_REQUIRED_POLICY = {"credentialProtectionPolicy": "userVerificationRequired"}


def protected_creation(server: Fido2Server, uv: UserVerificationRequirement) -> tuple[Any, Any]:
    options, state = server.register_begin(
        USER, resident_key_requirement=ResidentKeyRequirement.REQUIRED, user_verification=uv
    )
    return {**options["publicKey"], "extensions": UV_REQUIRED_POLICY}, state


@pytest.mark.parametrize("uv", [DISCOURAGED, UserVerificationRequirement.PREFERRED])
async def test_uv_required_policy_makes_a_pin_key_ask_for_its_pin(
    server: Fido2Server, uv: UserVerificationRequirement
) -> None:
    """As Chromium: userVerification is raised to "required" and python-fido2 gets the PIN
    through `on_pin`; the passkey is level 3 and made with UV."""
    person, asked = Person(), []

    def on_pin() -> str:
        asked.append("pin")
        return PIN

    with SoftwareSecurityKey.with_store(touch=person.touch, pin=PIN) as key:
        client = HybridClient(
            ORIGIN, on_status=person, transports=("usb",), security_keys=UsbPort(key), on_pin=on_pin
        )
        creation, state = protected_creation(server, uv)
        auth_data = server.register_complete(state, await client.make_credential(creation, no_qr))
        assert auth_data.extensions == {"credProtect": 3} and auth_data.is_user_verified()
        assert auth_data.credential_data is not None
        options, state = server.authenticate_begin()  # discoverable, "preferred": the PIN again
        assertion = await client.get_assertion(dict(options["publicKey"]), no_qr)
        server.authenticate_complete(state, [auth_data.credential_data], assertion)
    assert asked == ["pin", "pin"]
    assert ceremony_threads() == []


async def test_uv_required_policy_skips_a_key_without_pin_and_makes_nothing(
    server: Fido2Server,
) -> None:
    """python-fido2 alone would have this key make a level-3 passkey without UV ("discouraged"
    goes through as it is), one that no sign-in could ever use."""
    person, store = Person(), CredentialStore()
    with SoftwareSecurityKey.with_store(store, touch=person.touch) as key:
        client = HybridClient(
            ORIGIN, on_status=person, transports=("usb",), security_keys=UsbPort(key)
        )
        creation, _ = protected_creation(server, DISCOURAGED)
        with pytest.raises(SecurityKeyError) as caught:
            await client.make_credential(creation, no_qr)
    assert caught.value.reason is SecurityKeyReason.UV_NOT_CONFIGURED
    assert store.for_rp(RP_ID) == []
    assert Stage.TOUCH_KEY not in person.stages()  # never asked to touch a key it cannot use
    assert ceremony_threads() == []
