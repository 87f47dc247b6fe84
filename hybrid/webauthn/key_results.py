"""python-fido2 `Fido2Client` results (from a USB security key) as the phone path's JSON.

The key's CTAP2 reply goes through the very `finish_*` functions the phone's reply goes
through (same checks: RP ID hash, allow list, "none" attestation conveyance; same shape), then
two things differ: `response.transports` is ["usb"], and the client extension results are
the ones python-fido2 computed (it ran hmac-secret, largeBlob, credProps... with the key).
"""

from __future__ import annotations

import json
from typing import Any, Final

from fido2 import cbor
from fido2.client import AssertionSelection
from fido2.webauthn import AuthenticationExtensionsClientOutputs, RegistrationResponse

from hybrid.ctap import CtapStatus
from hybrid.webauthn.finish import finish_get_assertion, finish_make_credential
from hybrid.webauthn.prepare import PreparedRequest

#: What a USB security key is, from the site's point of view.
USB_TRANSPORTS: Final = ("usb",)


def _reply(body: dict[int, Any]) -> bytes:
    """`status ‖ CBOR`, the form a CTAP2 reply has on the wire."""
    return bytes([CtapStatus.SUCCESS]) + cbor.encode(
        {k: v for k, v in body.items() if v is not None}
    )


def _extensions(outputs: AuthenticationExtensionsClientOutputs) -> dict[str, Any]:
    """fido2's outputs (bytes inside) as the JSON a browser sends: base64url strings.

    python-fido2 2.2 reports an empty `prf.results.second` when only `first` was asked;
    browsers leave it out, and so do we.
    """
    result: dict[str, Any] = json.loads(json.dumps(dict(outputs)))
    results = result.get("prf", {}).get("results")
    if isinstance(results, dict) and not results.get("second"):
        results.pop("second", None)
    return result


def key_registration_json(
    prepared: PreparedRequest, registration: RegistrationResponse
) -> dict[str, Any]:
    """`RegistrationResponseJSON` for a key's `Fido2Client.make_credential` result."""
    attestation = registration.response.attestation_object
    reply = _reply({1: attestation.fmt, 2: bytes(attestation.auth_data), 3: attestation.att_stmt})
    result = finish_make_credential(prepared, reply)
    result["response"]["transports"] = list(USB_TRANSPORTS)
    result["clientExtensionResults"] = _extensions(registration.client_extension_results)
    return result


def key_assertion_json(prepared: PreparedRequest, selection: AssertionSelection) -> dict[str, Any]:
    """`AuthenticationResponseJSON` for a key's `Fido2Client.get_assertion` result.

    When a key holds several discoverable passkeys for the site it returns them all; the first
    (the key's most recent) is used, as the phone path uses the one the phone picked.
    """
    assertion = selection.get_assertions()[0]
    reply = _reply(
        {
            1: dict(assertion.credential) if assertion.credential else None,
            2: bytes(assertion.auth_data),
            3: assertion.signature,
            4: dict(assertion.user) if assertion.user else None,
        }
    )
    result = finish_get_assertion(prepared, reply)
    result["clientExtensionResults"] = _extensions(
        selection.get_response(0).client_extension_results
    )
    return result
