"""Fixtures: a software security key over the project's real passkey core, python-fido2 on top."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fido2.ctap2.base import Ctap2
from fido2.hid import CtapHidDevice

from hybrid.authenticator.key_core import StoreCredentialCore
from hybrid.authenticator.security_key import PresenceCheck, SoftwareSecurityKey
from hybrid.authenticator.store import CredentialStore

PIN = "1234"


class RecordingCore(StoreCredentialCore):
    """The real core over an in-memory store, noting what the key handed it (a spy, no fake)."""

    def __init__(self) -> None:
        super().__init__(CredentialStore())
        self.calls: list[tuple[str, dict[Any, Any], bool]] = []

    def make_credential(
        self, params: dict[Any, Any], user_verified: bool, confirm_presence: PresenceCheck
    ) -> dict[int, Any]:
        self.calls.append(("make_credential", params, user_verified))
        return super().make_credential(params, user_verified, confirm_presence)

    def get_assertion(
        self, params: dict[Any, Any], user_verified: bool, confirm_presence: PresenceCheck
    ) -> dict[int, Any]:
        self.calls.append(("get_assertion", params, user_verified))
        return super().get_assertion(params, user_verified, confirm_presence)


@pytest.fixture
def threads_before() -> Iterator[int]:
    """The thread count before the test; the test asserts it is back after closing the key."""
    yield threading.active_count()


@pytest.fixture
def core() -> RecordingCore:
    return RecordingCore()


@pytest.fixture
def touch() -> threading.Event:
    return threading.Event()


@pytest.fixture
def key(core: RecordingCore) -> Iterator[SoftwareSecurityKey]:
    """A key without a PIN whose button is pressed at once."""
    with SoftwareSecurityKey(core) as security_key:
        yield security_key


@pytest.fixture
def device(key: SoftwareSecurityKey) -> Iterator[CtapHidDevice]:
    dev = key.open_device()
    yield dev
    dev.close()


@pytest.fixture
def ctap2(device: CtapHidDevice) -> Ctap2:
    return Ctap2(device)
