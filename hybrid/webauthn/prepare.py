"""Turning a site's WebAuthn options into the one CTAP2 command a phone will answer.

Phones answer exactly one command per tunnel, so the request is prepared up front (clientDataJSON,
its hash, the makeCredential or getAssertion parameters) and encoded by `ctap_request_for` once
the phone's getInfo is known.

Option mapping (browsers do the same for phones):
- `rk` is sent when residentKey is "required" or "preferred" (phones make passkeys anyway);
- `uv` is sent when userVerification is "required" or "preferred" (the default), because a
  phone always verifies its user with its screen lock; "discouraged" sends no `uv`;
- `up` is never sent: presence is always wanted and true is its default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from fido2 import cbor
from fido2.ctap2.base import Info
from fido2.webauthn import (
    AttestationConveyancePreference,
    CollectedClientData,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialType,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hybrid.ctap import CtapCommand
from hybrid.webauthn.errors import InvalidOptions
from hybrid.webauthn.options import (
    effective_rp_id,
    normalize_origin,
    parse_creation_options,
    parse_request_options,
)

PUBLIC_KEY = PublicKeyCredentialType.PUBLIC_KEY.value
#: WebAuthn's default when a site lists no algorithms: ES256 and RS256.
DEFAULT_ALGORITHMS = (-7, -257)

_WANTED = (UserVerificationRequirement.REQUIRED, UserVerificationRequirement.PREFERRED)
_RK_WANTED = (ResidentKeyRequirement.REQUIRED, ResidentKeyRequirement.PREFERRED)


@dataclass(frozen=True)
class PreparedRequest:
    """Everything needed to send one CTAP command and to turn the reply into WebAuthn JSON."""

    kind: Literal["create", "get"]
    rp_id: str
    origin: str
    client_data: CollectedClientData
    command: CtapCommand
    ctap_params: Mapping[int, Any]  # the request map, before the phone's getInfo is known
    allow_credentials: tuple[bytes, ...] = ()
    resident_key: bool = False  # "rk" was sent
    cred_props: bool = False  # the site asked for the credProps extension
    attestation: str = AttestationConveyancePreference.NONE.value

    def ctap_request_for(self, info: Info) -> bytes:
        """`command ‖ canonical CBOR` for the phone whose parsed getInfo is `info`."""
        del info  # every phone gets the same request for now
        return bytes([self.command]) + cbor.encode(dict(self.ctap_params))

    @property
    def qr_request_type(self) -> str:
        """The QR code's request-type hint (key 5): "mc" or "ga"."""
        return "mc" if self.kind == "create" else "ga"


def _descriptors(items: Sequence[PublicKeyCredentialDescriptor] | None) -> list[dict[str, Any]]:
    """Public-key descriptors only, without transports (the phone needs the ID alone)."""
    return [
        {"id": bytes(d.id), "type": PUBLIC_KEY}
        for d in items or ()
        if d.type == PublicKeyCredentialType.PUBLIC_KEY
    ]


def _uv_wanted(requirement: UserVerificationRequirement | None) -> bool:
    return requirement is None or requirement in _WANTED  # WebAuthn's default is "preferred"


def prepare_make_credential(options: str | Mapping[str, Any], origin: str) -> PreparedRequest:
    """Build the makeCredential request for PublicKeyCredentialCreationOptionsJSON."""
    parsed = parse_creation_options(options)
    rp_id = effective_rp_id(parsed.rp.id, origin)
    normalized, _ = normalize_origin(origin)
    client_data = CollectedClientData.create(
        CollectedClientData.TYPE.CREATE.value, parsed.challenge, normalized, cross_origin=False
    )

    if parsed.pub_key_cred_params:
        algorithms = [
            p.alg
            for p in parsed.pub_key_cred_params
            if p.type == PublicKeyCredentialType.PUBLIC_KEY
        ]
        if not algorithms:
            raise InvalidOptions(
                "The registration options list no public-key algorithms: the site must "
                "offer at least one (for example ES256, -7)."
            )
    else:
        algorithms = list(DEFAULT_ALGORITHMS)

    selection = parsed.authenticator_selection
    resident_key = bool(selection and selection.resident_key in _RK_WANTED)
    ctap_options: dict[str, bool] = {}
    if resident_key:
        ctap_options["rk"] = True
    if _uv_wanted(selection.user_verification if selection else None):
        ctap_options["uv"] = True

    user: dict[str, Any] = {"id": bytes(parsed.user.id)}
    if parsed.user.name is not None:
        user["name"] = parsed.user.name
    if parsed.user.display_name is not None:
        user["displayName"] = parsed.user.display_name
    params: dict[int, Any] = {
        1: client_data.hash,
        2: {"id": rp_id, "name": parsed.rp.name},
        3: user,
        4: [{"alg": alg, "type": PUBLIC_KEY} for alg in algorithms],
    }
    exclude = _descriptors(parsed.exclude_credentials)
    if exclude:
        params[5] = exclude
    if ctap_options:
        params[7] = ctap_options

    extensions = parsed.extensions or {}
    return PreparedRequest(
        kind="create",
        rp_id=rp_id,
        origin=normalized,
        client_data=client_data,
        command=CtapCommand.MAKE_CREDENTIAL,
        ctap_params=MappingProxyType(params),
        resident_key=resident_key,
        cred_props=extensions.get("credProps") is True,
        attestation=(parsed.attestation or AttestationConveyancePreference.NONE).value,
    )


def prepare_get_assertion(options: str | Mapping[str, Any], origin: str) -> PreparedRequest:
    """Build the getAssertion request for PublicKeyCredentialRequestOptionsJSON."""
    parsed = parse_request_options(options)
    rp_id = effective_rp_id(parsed.rp_id, origin)
    normalized, _ = normalize_origin(origin)
    client_data = CollectedClientData.create(
        CollectedClientData.TYPE.GET.value, parsed.challenge, normalized, cross_origin=False
    )
    allow = _descriptors(parsed.allow_credentials)
    params: dict[int, Any] = {1: rp_id, 2: client_data.hash}
    if allow:
        params[3] = allow
    if _uv_wanted(parsed.user_verification):
        params[5] = {"uv": True}
    return PreparedRequest(
        kind="get",
        rp_id=rp_id,
        origin=normalized,
        client_data=client_data,
        command=CtapCommand.GET_ASSERTION,
        ctap_params=MappingProxyType(params),
        allow_credentials=tuple(d["id"] for d in allow),
    )
