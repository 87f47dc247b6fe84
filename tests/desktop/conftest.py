"""Fixtures of the security-key tests: the relying party that checks every result."""

from __future__ import annotations

import pytest
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity

from tests.conftest import RP_ID


@pytest.fixture
def server() -> Fido2Server:
    return Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="Example"))
