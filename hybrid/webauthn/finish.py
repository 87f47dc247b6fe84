"""Turning the phone's CTAP2 reply into the PublicKeyCredential JSON a site verifies.

The output is WebAuthn Level 3 `RegistrationResponseJSON` / `AuthenticationResponseJSON`
(base64url without padding), built with fido2's own types so `Fido2Server` accepts it.

Choices:
- Client extension outputs are reported only for extensions the site asked for (see
  `hybrid.webauthn.extensions`); credProps' `rk` is true when "rk" was sent to the phone and
  left out otherwise, meaning "unknown"; credProtect has no client output.
- "none" attestation conveyance (the default) replaces any attestation statement with
  `fmt: "none"`, as browsers do, so no device-identifying certificate leaks to the site.
- A reply for several discoverable credentials (numberOfCredentials > 1) is not expanded:
  the phone picks one, and the one it returned is used.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fido2.cose import ES256, RS256, CoseKey, EdDSA
from fido2.utils import bytes2int, sha256, websafe_encode
from fido2.webauthn import (
    AttestationObject,
    AuthenticationExtensionsClientOutputs,
    AuthenticationResponse,
    AuthenticatorAssertionResponse,
    AuthenticatorAttachment,
    AuthenticatorAttestationResponse,
    AuthenticatorData,
    RegistrationResponse,
)

from hybrid.ctap import decode_cbor_map, raise_for_status
from hybrid.errors import ProtocolError
from hybrid.webauthn.errors import InvalidOptions
from hybrid.webauthn.extensions import authentication_client_outputs, registration_client_outputs
from hybrid.webauthn.prepare import PreparedRequest

#: What a phone reached over hybrid is, from the site's point of view.
TRANSPORTS = ("hybrid", "internal")

_RETRY = "try again; if it keeps happening, use another phone or security key"


def _bad(what: str) -> ProtocolError:
    return ProtocolError(f"The phone's reply is malformed ({what}): {_RETRY}.")


def _body(prepared: PreparedRequest, kind: str, response: bytes) -> dict[Any, Any]:
    """Check the request kind and the status byte, then decode the CBOR map."""
    if prepared.kind != kind:
        other = "finish_make_credential" if prepared.kind == "create" else "finish_get_assertion"
        raise InvalidOptions(f"This request was prepared for {prepared.kind!r}: call {other}.")
    if not response:
        raise _bad("empty reply")
    raise_for_status(response[0], prepared.rp_id)
    return decode_cbor_map(bytes(response[1:]))


def _field(body: dict[Any, Any], key: int, kind: type, what: str) -> Any:
    value = body.get(key)
    if not isinstance(value, kind):
        raise _bad(f"{what} is missing or not a {kind.__name__}")
    return value


def _auth_data(prepared: PreparedRequest, raw: bytes) -> AuthenticatorData:
    try:
        auth_data = AuthenticatorData(raw)
    except Exception as exc:  # fido2's parser raises several types on short or odd data
        raise _bad("authenticator data cannot be parsed") from exc
    if auth_data.rp_id_hash != sha256(prepared.rp_id.encode()):
        raise ProtocolError(
            f"The phone answered for a different site than {prepared.rp_id}: {_RETRY}."
        )
    return auth_data


def _spki(key: CoseKey) -> bytes | None:
    """The credential key as SubjectPublicKeyInfo DER, for the algorithms WebAuthn requires."""
    public: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
    try:
        if isinstance(key, ES256) and key.get(-1) == 1:
            public = ec.EllipticCurvePublicNumbers(
                bytes2int(key[-2]), bytes2int(key[-3]), ec.SECP256R1()
            ).public_key()
        elif isinstance(key, EdDSA) and key.get(-1) == 6:
            public = ed25519.Ed25519PublicKey.from_public_bytes(key[-2])
        elif isinstance(key, RS256):
            public = rsa.RSAPublicNumbers(bytes2int(key[-2]), bytes2int(key[-1])).public_key()
        else:
            return None
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad("the credential public key is invalid") from exc
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _plain_json(data: Any) -> dict[str, Any]:
    """fido2 mappings → plain dicts and strings, exactly what `json.dumps` would send."""
    result: dict[str, Any] = json.loads(json.dumps(data))
    return result


def finish_make_credential(prepared: PreparedRequest, response: bytes) -> dict[str, Any]:
    """Turn the makeCredential reply (`status ‖ CBOR`) into RegistrationResponseJSON."""
    body = _body(prepared, "create", response)
    fmt = _field(body, 1, str, "fmt")
    auth_data = _auth_data(prepared, _field(body, 2, bytes, "authData"))
    att_stmt = _field(body, 3, dict, "attStmt")
    credential = auth_data.credential_data
    if credential is None:
        raise _bad("no attested credential data")
    if prepared.attestation == "none":
        fmt, att_stmt = "none", {}
    try:
        attestation_object = AttestationObject.create(fmt, auth_data, att_stmt)
    except Exception as exc:
        raise _bad("attestation statement cannot be encoded") from exc

    extensions = registration_client_outputs(
        prepared.registration_extensions, body.get(6), resident_key=prepared.resident_key
    )
    registration = RegistrationResponse(
        raw_id=credential.credential_id,
        response=AuthenticatorAttestationResponse(
            client_data=prepared.client_data, attestation_object=attestation_object
        ),
        authenticator_attachment=AuthenticatorAttachment.CROSS_PLATFORM,
        client_extension_results=AuthenticationExtensionsClientOutputs(extensions),
    )
    result = _plain_json(dict(registration))
    details: dict[str, Any] = {
        "transports": list(TRANSPORTS),
        "authenticatorData": websafe_encode(auth_data),
        "publicKeyAlgorithm": credential.public_key.get(3),
    }
    spki = _spki(credential.public_key)
    if spki is not None:
        details["publicKey"] = websafe_encode(spki)
    result["response"].update(details)
    return result


def finish_get_assertion(prepared: PreparedRequest, response: bytes) -> dict[str, Any]:
    """Turn the getAssertion reply (`status ‖ CBOR`) into AuthenticationResponseJSON."""
    body = _body(prepared, "get", response)
    if 1 in body:
        descriptor = _field(body, 1, dict, "credential")
        credential_id = descriptor.get("id")
        if not isinstance(credential_id, bytes):
            raise _bad("credential id is missing or not bytes")
        if prepared.allow_credentials and credential_id not in prepared.allow_credentials:
            raise ProtocolError(
                f"The phone used a passkey {prepared.rp_id} did not ask for: {_RETRY}."
            )
    elif len(prepared.allow_credentials) == 1:
        # CTAP lets an authenticator omit the credential when the allowList had one entry.
        credential_id = prepared.allow_credentials[0]
    else:
        raise _bad("no credential, and the allow list does not say which one was used")
    auth_data = _auth_data(prepared, _field(body, 2, bytes, "authData"))
    signature = _field(body, 3, bytes, "signature")
    user_handle = None
    if body.get(4) is not None:
        user_handle = _field(body, 4, dict, "user").get("id")
        if not isinstance(user_handle, bytes):
            raise _bad("user id is missing or not bytes")
    elif not prepared.allow_credentials:
        raise _bad("a discoverable sign-in needs the user handle")

    assertion = AuthenticationResponse(
        raw_id=credential_id,
        response=AuthenticatorAssertionResponse(
            client_data=prepared.client_data,
            authenticator_data=auth_data,
            signature=signature,
            user_handle=user_handle,
        ),
        authenticator_attachment=AuthenticatorAttachment.CROSS_PLATFORM,
        client_extension_results=AuthenticationExtensionsClientOutputs(
            authentication_client_outputs(prepared.authentication_extensions, body.get(8))
        ),
    )
    return _plain_json(dict(assertion))
