"""Fixtures shared by every test directory: real tunnel servers, a virtual radio, a relying party.

`tests/tunnel_server/conftest.py` adds in-process servers with config overrides; BlueZ's
D-Bus fakes live in `tests/ble/conftest.py` because only the BLE tests use them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from fido2.ctap2.base import Info
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from hybrid.authenticator import SoftwareAuthenticator, approve_all
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.ctap import decode_cbor_map
from hybrid.desktop import HybridClient
from tunnel_server import ServerConfig, TunnelServer
from tunnel_server.testing import running_server_process

RP_ID = "example.com"
ORIGIN = "https://example.com"
USER = PublicKeyCredentialUserEntity(id=b"user-alice", name="alice", display_name="Alice")
#: The software authenticator's getInfo (CBOR), and parsed: what a desktop builds its request for.
PHONE_GET_INFO = SoftwareAuthenticator(approve=approve_all, verifies_user=True).get_info_cbor()
PHONE_INFO = Info.from_dict(decode_cbor_map(PHONE_GET_INFO))

ClientFactory = Callable[..., HybridClient]

#: tests/uhid needs a kernel with uhid: tests/vm runs it in a VM; elsewhere it is not collected.
collect_ignore = [] if os.path.exists("/dev/uhid") else ["uhid"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tunnel_url() -> AsyncIterator[str]:
    """A real `python -m tunnel_server` process on loopback, shared by a module's tests."""
    async with running_server_process() as url:
        yield url


@pytest.fixture
async def tunnel_process() -> AsyncIterator[str]:
    """A fresh tunnel server process for one test, for tests that read its metrics."""
    async with running_server_process() as url:
        yield url


@pytest.fixture
async def local_server() -> AsyncIterator[TunnelServer]:
    """An in-process tunnel server on a free loopback port, for tests that inspect it."""
    async with TunnelServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        yield server


@pytest.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    """A virtual BLE radio (bumble LocalLink); every device on it is closed after the test."""
    async with VirtualRadio() as virtual_radio:
        yield virtual_radio


@pytest.fixture
async def advertiser(radio: VirtualRadio) -> AsyncIterator[BumbleAdvertiser]:
    phone_radio = await BumbleAdvertiser.from_radio(radio, "phone")
    yield phone_radio
    await phone_radio.close()


@pytest.fixture
def relying_party() -> Fido2Server:
    return Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="Example"))


@dataclass
class StatusLog:
    messages: list[str]

    def __call__(self, status: object) -> None:
        self.messages.append(str(status))


@pytest.fixture
def make_client(radio: VirtualRadio, tunnel_url: str) -> ClientFactory:
    """`HybridClient`s scanning the virtual radio and using the shared tunnel server."""

    def factory(timeout: float = 20.0, **kwargs: Any) -> HybridClient:
        return HybridClient(
            origin=ORIGIN,
            tunnel_url=kwargs.pop("tunnel_url", tunnel_url),
            scanner_backend=BumbleScannerBackend,
            scanner_kwargs={"radio": radio, **kwargs.pop("scanner_kwargs", {})},
            timeout=timeout,
            **kwargs,
        )

    return factory
