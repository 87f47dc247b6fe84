"""FIDO hybrid transport (caBLE v2): sign in on a desktop with the passkey on a phone."""

from hybrid.errors import HybridError

__all__ = ["HybridError"]
