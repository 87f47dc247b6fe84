"""The software authenticators: the phone role (CTAP2 logic, consent callback, passkey store)
and a software USB security key, both over the same passkey core."""

from hybrid.authenticator.approval import ApprovalRequest, Approver, approve_all
from hybrid.authenticator.ctap import SoftwareAuthenticator
from hybrid.authenticator.key_core import StoreCredentialCore
from hybrid.authenticator.phone import PhoneSessionResult, answer_qr
from hybrid.authenticator.security_key import SoftwareSecurityKey
from hybrid.authenticator.store import CredentialStore
from hybrid.authenticator.stored_credential import StoredCredential

__all__ = [
    "ApprovalRequest",
    "Approver",
    "CredentialStore",
    "PhoneSessionResult",
    "SoftwareAuthenticator",
    "SoftwareSecurityKey",
    "StoreCredentialCore",
    "StoredCredential",
    "answer_qr",
    "approve_all",
]
