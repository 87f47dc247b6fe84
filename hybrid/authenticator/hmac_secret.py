"""The hmac-secret extension (CTAP 2.1 §12.5) of the software security key, PIN protocol 2.

Platforms reach it through WebAuthn's `prf` (python-fido2 maps one onto the other). Each
credential's two CredRandom values (with and without UV) are derived from the per-credential
secret the store already keeps for the phone's prf, so nothing new is stored.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any, Final

from hybrid.authenticator.client_pin import PIN_PROTOCOL, ClientPinAuthenticator, decrypt, encrypt
from hybrid.authenticator.client_pin import verify as verify_auth
from hybrid.ctap import CtapStatus
from hybrid.errors import CtapStatusError

HMAC_SECRET: Final = "hmac-secret"
SALT_LENGTH: Final = 32


def _fail(status: CtapStatus, why: str) -> CtapStatusError:
    return CtapStatusError(status, f"{status.name}: {why}")


@dataclass(frozen=True)
class HmacSecretInput:
    """A checked and decrypted getAssertion hmac-secret input: one or two salts."""

    shared_secret: bytes = field(repr=False)  # key material: kept out of logs
    salts: tuple[bytes, ...] = field(repr=False)


def wants_hmac_secret(extensions: Any) -> bool:
    """makeCredential: `{"hmac-secret": true}` asks the key to make the credential's secrets."""
    return isinstance(extensions, dict) and extensions.get(HMAC_SECRET) is True


def read_input(value: Any, client_pin: ClientPinAuthenticator) -> HmacSecretInput:
    """Check saltAuth (constant time) and decrypt saltEnc: {1: keyAgreement, 2: saltEnc,
    3: saltAuth, 4: pinUvAuthProtocol}."""
    if not isinstance(value, dict):
        raise _fail(CtapStatus.CBOR_UNEXPECTED_TYPE, "hmac-secret input must be a map")
    salt_enc, salt_auth = value.get(2), value.get(3)
    if value.get(1) is None or not isinstance(salt_enc, bytes) or not isinstance(salt_auth, bytes):
        raise _fail(
            CtapStatus.MISSING_PARAMETER, "hmac-secret needs keyAgreement, saltEnc, saltAuth"
        )
    if value.get(4, 1) != PIN_PROTOCOL:
        raise _fail(CtapStatus.INVALID_PARAMETER, "hmac-secret: only PIN/UV auth protocol 2")
    shared = client_pin.shared_secret(value[1])
    if not verify_auth(shared, salt_enc, salt_auth):
        raise _fail(CtapStatus.PIN_AUTH_INVALID, "hmac-secret saltAuth does not verify")
    salts = decrypt(shared, salt_enc)
    if len(salts) not in (SALT_LENGTH, 2 * SALT_LENGTH):
        raise _fail(CtapStatus.INVALID_LENGTH, "hmac-secret takes one or two 32-byte salts")
    return HmacSecretInput(
        shared, tuple(salts[i : i + SALT_LENGTH] for i in range(0, len(salts), SALT_LENGTH))
    )


def output(credential_secret: bytes, user_verified: bool, given: HmacSecretInput) -> bytes:
    """Encrypted HMAC-SHA-256(CredRandom, salt1) [‖ ...(salt2)] for the authData extension."""
    label = b"CredRandomWithUV" if user_verified else b"CredRandomWithoutUV"
    cred_random = hmac.digest(credential_secret, label, "sha256")
    results = b"".join(hmac.digest(cred_random, salt, "sha256") for salt in given.salts)
    return encrypt(given.shared_secret, results)
