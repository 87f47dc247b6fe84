"""The software phone the end-to-end tests run against."""

from __future__ import annotations

from hybrid.authenticator import Approver, SoftwareAuthenticator, approve_all


def verifying_phone(approve: Approver = approve_all) -> SoftwareAuthenticator:
    """A phone whose approval is its screen-lock check (verifies_user=True), like a real one.

    Its getInfo has `uv`, so the desktop sends `uv` and Chromium's credProtect default as it
    would to a real phone; `tests/e2e/test_extensions.py` also runs the default phone, which
    offers no verification. `approve` stands in for the user at the phone.
    """
    return SoftwareAuthenticator(approve=approve, verifies_user=True)
