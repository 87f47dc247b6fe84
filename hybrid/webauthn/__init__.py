"""The desktop's WebAuthn layer: site options JSON → one CTAP2 command → PublicKeyCredential JSON.

Typical use over a hybrid tunnel::

    prepared = prepare_get_assertion(options_json, "https://example.com")
    request = prepared.ctap_request_for(session.info)    # once the phone's getInfo is in
    reply = await session.transact(request)               # status ‖ CBOR from the phone
    credential_json = finish_get_assertion(prepared, reply)
"""

from hybrid.webauthn.errors import (
    InvalidOptions,
    InvalidOrigin,
    UnknownCredential,
    orphaned_passkey_advice,
)
from hybrid.webauthn.fido2_hints import cache_fido2_type_hints
from hybrid.webauthn.finish import TRANSPORTS, finish_get_assertion, finish_make_credential
from hybrid.webauthn.options import (
    effective_rp_id,
    normalize_origin,
    parse_creation_options,
    parse_request_options,
)
from hybrid.webauthn.prepare import PreparedRequest, prepare_get_assertion, prepare_make_credential

__all__ = [
    "TRANSPORTS",
    "InvalidOptions",
    "InvalidOrigin",
    "PreparedRequest",
    "UnknownCredential",
    "cache_fido2_type_hints",
    "effective_rp_id",
    "finish_get_assertion",
    "finish_make_credential",
    "normalize_origin",
    "orphaned_passkey_advice",
    "parse_creation_options",
    "parse_request_options",
    "prepare_get_assertion",
    "prepare_make_credential",
]
