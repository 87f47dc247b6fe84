"""The passkey logic both software authenticators share, synchronous and free of consent.

The phone (`SoftwareAuthenticator`, async approval) and the USB key (`StoreCredentialCore`,
a touch) each obtain presence and verification their own way, then call `Passkeys` and say
what they earned: the UP flag is set only when `user_present`, UV only when `user_verified`.
Here live the P-256 credentials ("none" attestation, all-zero AAGUID), the exclude-list
check, the rpId/allowList lookup with credProtect visibility, signatures, counters and the
prf/credProtect/largeBlob extensions. Each front lists the extensions it offers; the others
are ignored, as unknown extensions are.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.cose import ES256
from fido2.utils import sha256
from fido2.webauthn import Aaguid, AttestedCredentialData, AuthenticatorData

from hybrid.authenticator.extensions import (
    GetAssertionExtensions,
    MakeCredentialExtensions,
    assert_with,
    credential_visible,
    new_prf_secret,
    parse_get_assertion_extensions,
    parse_make_credential_extensions,
    register,
)
from hybrid.authenticator.requests import (
    PUBLIC_KEY,
    GetAssertionRequest,
    MakeCredentialRequest,
    parse_get_assertion,
    parse_make_credential,
)
from hybrid.authenticator.store import CredentialStore
from hybrid.authenticator.stored_credential import StoredCredential
from hybrid.ctap import CtapStatus
from hybrid.errors import CtapStatusError
from hybrid.text import printable

logger = logging.getLogger(__name__)

AAGUID: Final = Aaguid.NONE
CREDENTIAL_ID_LENGTH: Final = 32
SUPPORTED_ALGORITHMS: Final = (ES256.ALGORITHM,)

_FLAG = AuthenticatorData.FLAG


@dataclass(frozen=True)
class MakeCredential:
    """A validated makeCredential: the request and the extensions this front offers."""

    request: MakeCredentialRequest
    extensions: MakeCredentialExtensions


@dataclass(frozen=True)
class GetAssertion:
    """A validated getAssertion: the request and the extensions this front offers."""

    request: GetAssertionRequest
    extensions: GetAssertionExtensions


def _status(status: CtapStatus, why: str) -> CtapStatusError:
    return CtapStatusError(status, f"{status.name}: {why}")


def _offered(value: Any, names: Sequence[str]) -> Any:
    """The extension map without the extensions this front does not offer (they are ignored)."""
    if isinstance(value, dict):
        return {name: entry for name, entry in value.items() if name in names}
    return value  # not a map: the parser reports it


def _flags(*, user_present: bool, user_verified: bool) -> _FLAG:
    flags = _FLAG.UP if user_present else _FLAG(0)
    return flags | _FLAG.UV if user_verified else flags


class Passkeys:
    """Create, find and use the passkeys in `store`, answering the extensions in `extensions`."""

    def __init__(self, store: CredentialStore, *, extensions: Sequence[str]) -> None:
        self._store = store
        self._extensions = tuple(extensions)

    def __repr__(self) -> str:
        return f"Passkeys({self._store!r}, extensions={list(self._extensions)})"

    @property
    def store(self) -> CredentialStore:
        return self._store

    @property
    def extensions(self) -> tuple[str, ...]:
        return self._extensions

    def parse_make_credential(self, params: dict[Any, Any]) -> MakeCredential:
        """Validate the request map; an unsupported algorithm list is refused here, before UP."""
        request = parse_make_credential(params)
        extensions = parse_make_credential_extensions(_offered(params.get(6), self._extensions))
        if not any(alg in SUPPORTED_ALGORITHMS for alg in request.algorithms):
            raise _status(CtapStatus.UNSUPPORTED_ALGORITHM, "only ES256 (-7) is supported")
        return MakeCredential(request, extensions)

    def parse_get_assertion(
        self, params: dict[Any, Any], *, allow_silent: bool = False
    ) -> GetAssertion:
        """Validate the request map; `allow_silent` answers `up: false` instead of refusing."""
        request = parse_get_assertion(params, allow_silent=allow_silent)
        extensions = parse_get_assertion_extensions(
            _offered(params.get(4), self._extensions), request.allow_ids
        )
        return GetAssertion(request, extensions)

    def create(
        self,
        make: MakeCredential,
        *,
        user_verified: bool,
        discoverable: bool = True,
        signed_extensions: Mapping[str, Any] | None = None,
    ) -> dict[int, Any]:
        """Create and store a passkey once presence was confirmed; the response map.

        `discoverable=False` (a key asked without `rk`) makes a credential used by ID alone;
        `signed_extensions` are a front's own authenticator-data outputs (the key's hmac-secret).

        An excluded credential the request may see (credProtect 3 needs UV) is
        CREDENTIAL_EXCLUDED, checked after presence as CTAP 2.1 §6.1.2 step 7 says.
        """
        request = make.request
        if request.exclude_ids and any(
            credential_visible(c.cred_protect, allow_list=True, uv=user_verified)
            for c in self._store.for_rp(request.rp_id, request.exclude_ids)
        ):
            raise _status(CtapStatus.CREDENTIAL_EXCLUDED, "a listed credential exists")

        prf_secret = new_prf_secret()
        registration = register(make.extensions, prf_secret)
        private_key = ec.generate_private_key(ec.SECP256R1())
        credential = self._store.add(
            rp_id=request.rp_id,
            user_id=request.user_id,
            user_name=request.user_name,
            user_display_name=request.user_display_name,
            credential_id=secrets.token_bytes(CREDENTIAL_ID_LENGTH),
            private_key=private_key,
            prf_secret=prf_secret,
            cred_protect=registration.cred_protect,
            discoverable=discoverable,
        )
        attested = AttestedCredentialData.create(
            AAGUID,
            credential.credential_id,
            ES256.from_cryptography_key(private_key.public_key()),  # type: ignore[no-untyped-call]
        )
        flags = _flags(user_present=True, user_verified=user_verified) | _FLAG.AT
        signed = {**registration.authenticator_extensions, **(signed_extensions or {})} or None
        if signed:
            flags |= _FLAG.ED
        auth_data = AuthenticatorData.create(
            sha256(request.rp_id.encode()), flags, credential.sign_count, attested, signed
        )
        logger.info("created a passkey for %s", printable(request.rp_id))
        response: dict[int, Any] = {1: "none", 2: auth_data, 3: {}}
        if registration.unsigned_outputs:
            response[6] = registration.unsigned_outputs
        return response

    def candidates(self, get: GetAssertion, *, user_verified: bool) -> list[StoredCredential]:
        """The credentials this request may use, newest first (credProtect hides the others,
        and a request without an allowList sees only discoverable ones)."""
        request = get.request
        allow_list = request.allow_ids is not None
        return [
            c
            for c in self._store.for_rp(request.rp_id, request.allow_ids)
            if (allow_list or c.discoverable)
            and credential_visible(c.cred_protect, allow_list=allow_list, uv=user_verified)
        ]

    def sign(
        self,
        get: GetAssertion,
        credential: StoredCredential,
        *,
        user_present: bool,
        user_verified: bool,
        reveal_user: bool,
        signed_extensions: Callable[[StoredCredential], Mapping[str, Any]] | None = None,
    ) -> dict[int, Any]:
        """Count, save a written large blob, and sign: the getAssertion response map.

        `signed_extensions(credential)` gives a front's own authenticator-data outputs.

        `reveal_user` adds the user's name and display name (a discoverable request on a
        front that may show them). Removed meanwhile by another process: NO_CREDENTIALS.
        """
        request, extensions = get.request, get.extensions
        used = self._store.use(credential, large_blob=extensions.large_blob_write)
        if used is None:
            raise _status(CtapStatus.NO_CREDENTIALS, "the credential was removed")
        outputs = assert_with(
            extensions,
            used.credential_id,
            prf_secret=used.prf_secret,
            large_blob=used.large_blob,
        )
        written = outputs.large_blob_to_store is not None and used.large_blob == (
            outputs.large_blob_to_store
        )
        signed = dict(signed_extensions(used)) if signed_extensions else None
        flags = _flags(user_present=user_present, user_verified=user_verified)
        auth_data = AuthenticatorData.create(
            sha256(request.rp_id.encode()),
            flags | _FLAG.ED if signed else flags,
            used.sign_count,
            extensions=signed or None,
        )
        signature = used.private_key.sign(
            auth_data + request.client_data_hash, ec.ECDSA(hashes.SHA256())
        )
        user: dict[str, Any] = {"id": used.user_id}
        if reveal_user:
            if used.user_name is not None:
                user["name"] = used.user_name
            if used.user_display_name is not None:
                user["displayName"] = used.user_display_name
        response: dict[int, Any] = {
            1: {"id": used.credential_id, "type": PUBLIC_KEY},
            2: auth_data,
            3: signature,
            4: user,
        }
        unsigned = outputs.unsigned_outputs(stored=written)
        if unsigned:
            response[8] = unsigned
        logger.info("signed an assertion for %s", printable(request.rp_id))
        return response
