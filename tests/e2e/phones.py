"""The software phone the end-to-end tests run against."""

from __future__ import annotations

from hybrid.authenticator import Approver, SoftwareAuthenticator, approve_all


def verifying_phone(approve: Approver = approve_all) -> SoftwareAuthenticator:
    """A phone whose approval is its screen-lock check (verifies_user=True), like a real one.

    The desktop asks for user verification by default ("preferred"), so these tests need a
    phone that offers it; `approve` stands in for the user at the phone.
    """
    return SoftwareAuthenticator(approve=approve, verifies_user=True)
