"""The phone role's authenticator: CTAP2 command logic, consent callback and passkey store."""

from hybrid.authenticator.approval import ApprovalRequest, Approver, approve_all
from hybrid.authenticator.ctap import SoftwareAuthenticator
from hybrid.authenticator.phone import PhoneSessionResult, answer_qr
from hybrid.authenticator.store import CredentialStore, StoredCredential

__all__ = [
    "ApprovalRequest",
    "Approver",
    "CredentialStore",
    "PhoneSessionResult",
    "SoftwareAuthenticator",
    "StoredCredential",
    "answer_qr",
    "approve_all",
]
