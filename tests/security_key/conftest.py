"""Fixtures: a software security key (with its in-memory core) and python-fido2 on top of it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fido2.ctap2.base import Ctap2
from fido2.hid import CtapHidDevice

from hybrid.authenticator.security_key import SoftwareSecurityKey
from tests.security_key.memory_core import MemoryCore

PIN = "1234"


@pytest.fixture
def threads_before() -> Iterator[int]:
    """The thread count before the test; the test asserts it is back after closing the key."""
    yield threading.active_count()


@pytest.fixture
def core() -> MemoryCore:
    return MemoryCore()


@pytest.fixture
def touch() -> threading.Event:
    return threading.Event()


@pytest.fixture
def key(core: MemoryCore) -> Iterator[SoftwareSecurityKey]:
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
