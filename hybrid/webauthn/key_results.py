"""python-fido2 `Fido2Client` results (from a USB security key) as the phone path's JSON.

The site gets the same `RegistrationResponseJSON` / `AuthenticationResponseJSON` shape whichever
authenticator answered; `response.transports` (["usb"]) says it was a key. As on the phone path,
"none" attestation conveyance replaces the key's attestation statement with `fmt: "none"`, so
no device-identifying certificate reaches the site.
"""

from __future__ import annotations

from typing import Any, Final

from fido2.client import AssertionSelection
from fido2.utils import websafe_encode
from fido2.webauthn import (
    AttestationObject,
    AuthenticatorAttachment,
    AuthenticatorAttestationResponse,
    RegistrationResponse,
)

from hybrid.webauthn.finish import _plain_json, _spki
from hybrid.webauthn.prepare import PreparedRequest

#: What a USB security key is, from the site's point of view.
USB_TRANSPORTS: Final = ("usb",)


def key_registration_json(
    prepared: PreparedRequest, registration: RegistrationResponse
) -> dict[str, Any]:
    """`RegistrationResponseJSON` for a key's `Fido2Client.make_credential` result."""
    attestation = registration.response.attestation_object
    auth_data = attestation.auth_data
    credential = auth_data.credential_data
    if credential is None:  # Fido2Client checked it; keep mypy and readers sure
        raise ValueError("a registration without attested credential data")
    if prepared.attestation == "none":
        attestation = AttestationObject.create("none", auth_data, {})
    response = RegistrationResponse(
        raw_id=credential.credential_id,
        response=AuthenticatorAttestationResponse(
            client_data=prepared.client_data, attestation_object=attestation
        ),
        authenticator_attachment=AuthenticatorAttachment.CROSS_PLATFORM,
        client_extension_results=registration.client_extension_results,
    )
    result = _plain_json(dict(response))
    details: dict[str, Any] = {
        "transports": list(USB_TRANSPORTS),
        "authenticatorData": websafe_encode(auth_data),
        "publicKeyAlgorithm": credential.public_key.get(3),
    }
    spki = _spki(credential.public_key)
    if spki is not None:
        details["publicKey"] = websafe_encode(spki)
    result["response"].update(details)
    return result


def key_assertion_json(selection: AssertionSelection) -> dict[str, Any]:
    """`AuthenticationResponseJSON` for a key's `Fido2Client.get_assertion` result.

    When a key holds several discoverable passkeys for the site it returns them all; the first
    (the key's most recent) is used, as the phone path uses the one the phone picked.
    """
    return _plain_json(dict(selection.get_response(0)))
