"""A minimal in-memory `CredentialCore` for the security key tests (ES256, "none" attestation).

The integrator plugs the project's `SoftwareAuthenticator` in instead; this one exists so the
key's PIN/UV and touch handling can be driven end to end by python-fido2's real client.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.cose import ES256
from fido2.utils import sha256
from fido2.webauthn import Aaguid, AttestedCredentialData, AuthenticatorData

from hybrid.authenticator.security_key import PresenceCheck
from hybrid.ctap import CtapStatus
from hybrid.errors import CtapStatusError

FLAG = AuthenticatorData.FLAG


@dataclass
class Credential:
    rp_id: str
    credential_id: bytes
    user_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    sign_count: int = 0


class MemoryCore:
    """Creates and uses P-256 credentials kept in a list; flags UV only when told it was earned."""

    aaguid: bytes = Aaguid.NONE
    algorithms: Sequence[int] = (ES256.ALGORITHM,)
    extensions: Sequence[str] = ()

    def __init__(self) -> None:
        self.credentials: list[Credential] = []
        self.calls: list[tuple[str, dict[Any, Any], bool]] = []

    @staticmethod
    def _flags(user_verified: bool, user_present: bool = True) -> AuthenticatorData.FLAG:
        flags = FLAG.UP if user_present else FLAG(0)
        return flags | FLAG.UV if user_verified else flags

    def make_credential(
        self, params: dict[Any, Any], user_verified: bool, confirm_presence: PresenceCheck
    ) -> dict[int, Any]:
        self.calls.append(("make_credential", params, user_verified))
        if not any(p.get("alg") == ES256.ALGORITHM for p in params[4]):
            raise CtapStatusError(CtapStatus.UNSUPPORTED_ALGORITHM)
        rp_id = params[2]["id"]
        excluded = {d["id"] for d in params.get(5, [])}
        confirm_presence()
        if any(c.rp_id == rp_id and c.credential_id in excluded for c in self.credentials):
            raise CtapStatusError(CtapStatus.CREDENTIAL_EXCLUDED)
        credential = Credential(
            rp_id, os.urandom(32), params[3]["id"], ec.generate_private_key(ec.SECP256R1())
        )
        self.credentials.append(credential)
        attested = AttestedCredentialData.create(
            self.aaguid,
            credential.credential_id,
            ES256.from_cryptography_key(credential.private_key.public_key()),  # type: ignore[no-untyped-call]
        )
        auth_data = AuthenticatorData.create(
            sha256(rp_id.encode()), self._flags(user_verified) | FLAG.AT, 0, attested
        )
        return {1: "none", 2: auth_data, 3: {}}

    def get_assertion(
        self, params: dict[Any, Any], user_verified: bool, confirm_presence: PresenceCheck
    ) -> dict[int, Any]:
        self.calls.append(("get_assertion", params, user_verified))
        rp_id, client_data_hash = params[1], params[2]
        allowed = {d["id"] for d in params.get(3, [])}
        matches = [
            c
            for c in self.credentials
            if c.rp_id == rp_id and (not allowed or c.credential_id in allowed)
        ]
        if not matches:
            raise CtapStatusError(CtapStatus.NO_CREDENTIALS)
        present = params.get(5, {}).get("up", True)  # up=false: a platform's silent pre-flight
        if present:
            confirm_presence()
        credential = matches[-1]
        credential.sign_count += 1
        auth_data = AuthenticatorData.create(
            sha256(rp_id.encode()), self._flags(user_verified, present), credential.sign_count
        )
        signature = credential.private_key.sign(
            auth_data + client_data_hash, ec.ECDSA(hashes.SHA256())
        )
        return {
            1: {"type": "public-key", "id": credential.credential_id},
            2: auth_data,
            3: signature,
            4: {"id": credential.user_id},
        }
