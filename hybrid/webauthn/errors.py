"""Errors of the desktop's WebAuthn layer, and advice for passkeys a site no longer knows."""

from __future__ import annotations

from hybrid.errors import HybridError


class InvalidOptions(HybridError):
    """The site's WebAuthn options (JSON) are malformed, incomplete or unusable."""


class InvalidOrigin(InvalidOptions):
    """The origin is not a secure origin, or the RP ID is not valid for it."""


def orphaned_passkey_advice(rp_id: str) -> str:
    """What to tell a user whose passkey was deleted at the site but is still on the phone."""
    return (
        f"The passkey you used is no longer registered at {rp_id}: remove it from your "
        "phone's password manager and register again."
    )


class UnknownCredential(HybridError):
    """Raise when the RP rejects an assertion because it does not know the credential ID.

    Phones keep passkeys that a site has since deleted; the user can only fix that on the
    phone, so the message says how.
    """

    def __init__(self, rp_id: str, credential_id: bytes | None = None) -> None:
        self.rp_id = rp_id
        self.credential_id = credential_id
        super().__init__(orphaned_passkey_advice(rp_id))
