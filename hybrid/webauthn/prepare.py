"""Turning a site's WebAuthn options into the one CTAP2 command a phone will answer.

Phones answer exactly one command per tunnel, so the request is prepared up front (clientDataJSON,
its hash, the makeCredential or getAssertion parameters) and encoded by `ctap_request_for` once
the phone's getInfo is known.

Option mapping (browsers do the same for phones):
- `rk` is sent when residentKey is "required" or "preferred" (phones make passkeys anyway);
- `uv` follows the phone's getInfo: "required" or "preferred" (the default) send `uv` to a
  phone whose getInfo has `uv: true`; "preferred" sends nothing to a phone without it and
  "required" fails with `UserVerificationUnavailable` before anything is sent; "discouraged"
  never sends `uv`; a create() whose credProtect policy is "userVerificationRequired" is
  "required" whatever the site set (Chromium's upgrade: such a credential needs UV to exist);
- `up` is never sent: presence is always wanted and true is its default.
Extensions are validated here, before any QR code, and mapped per phone in `ctap_request_for`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

from hybrid.ctap import CtapCommand, GetAssertionKey, MakeCredentialKey
from hybrid.errors import UserVerificationUnavailable
from hybrid.webauthn.errors import InvalidOptions
from hybrid.webauthn.extensions import (
    AuthenticationExtensions,
    RegistrationExtensions,
    authentication_ctap_extensions,
    parse_authentication_extensions,
    parse_registration_extensions,
    phone_verifies_user,
    registration_ctap_extensions,
)
from hybrid.webauthn.options import (
    effective_rp_id,
    normalize_origin,
    parse_creation_options,
    parse_request_options,
)

PUBLIC_KEY = PublicKeyCredentialType.PUBLIC_KEY.value
#: WebAuthn's default when a site lists no algorithms: ES256 and RS256.
DEFAULT_ALGORITHMS = (-7, -257)

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
    attestation: str = AttestationConveyancePreference.NONE.value
    #: The site's wish, raised to "required" by a credProtect policy that needs UV.
    user_verification: str = UserVerificationRequirement.PREFERRED.value
    registration_extensions: RegistrationExtensions = field(default_factory=RegistrationExtensions)
    authentication_extensions: AuthenticationExtensions = field(
        default_factory=AuthenticationExtensions
    )

    def sends_uv_to(self, info: Info) -> bool:
        """Whether the request for this phone carries `uv: true`; `UserVerificationUnavailable`
        if the site requires verification and the phone's getInfo offers none."""
        if self.user_verification == UserVerificationRequirement.DISCOURAGED.value:
            return False
        if phone_verifies_user(info):
            return True
        if self.user_verification == UserVerificationRequirement.REQUIRED.value:
            raise UserVerificationUnavailable()
        return False

    def ctap_request_for(self, info: Info) -> bytes:
        """`command ‖ canonical CBOR` for the phone whose parsed getInfo is `info`.

        Raises a `PhoneLacksFeature` (user verification, an enforced extension) when the phone
        cannot give what the site demands, so that nothing is sent.
        """
        params = dict(self.ctap_params)
        uv = self.sends_uv_to(info)
        options_key: int
        extensions_key: int
        if self.kind == "create":
            options_key, extensions_key = MakeCredentialKey.OPTIONS, MakeCredentialKey.EXTENSIONS
            extensions = registration_ctap_extensions(
                self.registration_extensions,
                info,
                resident_key=self.resident_key,
                user_verification=uv,
            )
        else:
            options_key, extensions_key = GetAssertionKey.OPTIONS, GetAssertionKey.EXTENSIONS
            extensions = authentication_ctap_extensions(self.authentication_extensions, info)
        options = dict(params.get(options_key, {}))
        if uv:
            options["uv"] = True
        if options:
            params[options_key] = options
        if extensions:
            params[extensions_key] = extensions
        return bytes([self.command]) + cbor.encode(params)

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


def _uv_requirement(requirement: UserVerificationRequirement | None) -> str:
    return (requirement or UserVerificationRequirement.PREFERRED).value  # WebAuthn's default


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
    user_verification = _uv_requirement(selection.user_verification if selection else None)
    extensions = parse_registration_extensions(
        parsed.extensions,
        resident_key=selection.resident_key.value if selection and selection.resident_key else None,
        user_verification=user_verification,
    )
    if extensions.requires_user_verification:
        user_verification = UserVerificationRequirement.REQUIRED.value

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
    if resident_key:
        params[7] = {"rk": True}
    return PreparedRequest(
        kind="create",
        rp_id=rp_id,
        origin=normalized,
        client_data=client_data,
        command=CtapCommand.MAKE_CREDENTIAL,
        ctap_params=MappingProxyType(params),
        resident_key=resident_key,
        attestation=(parsed.attestation or AttestationConveyancePreference.NONE).value,
        user_verification=user_verification,
        registration_extensions=extensions,
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
    allow_ids = tuple(d["id"] for d in allow)
    extensions = parse_authentication_extensions(parsed.extensions, allow_ids)
    params: dict[int, Any] = {1: rp_id, 2: client_data.hash}
    if allow:
        params[3] = allow
    return PreparedRequest(
        kind="get",
        rp_id=rp_id,
        origin=normalized,
        client_data=client_data,
        command=CtapCommand.GET_ASSERTION,
        ctap_params=MappingProxyType(params),
        allow_credentials=allow_ids,
        user_verification=_uv_requirement(parsed.user_verification),
        authentication_extensions=extensions,
    )
