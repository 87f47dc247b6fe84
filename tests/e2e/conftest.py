"""End-to-end fixtures: a real tunnel server process, a virtual radio, a relying party."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.client import HybridClient
from tunnel_server.testing import running_server_process

RP_ID = "example.com"
ORIGIN = "https://example.com"
USER = PublicKeyCredentialUserEntity(id=b"user-alice", name="alice", display_name="Alice")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tunnel_url() -> AsyncIterator[str]:
    """A real `python -m tunnel_server` process on loopback, shared by a module's tests."""
    async with running_server_process() as url:
        yield url


@pytest.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
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
def make_client(radio: VirtualRadio, tunnel_url: str) -> object:
    def factory(timeout: float = 20.0, **kwargs: object) -> HybridClient:
        return HybridClient(
            origin=ORIGIN,
            tunnel_url=kwargs.pop("tunnel_url", tunnel_url),  # type: ignore[arg-type]
            scanner_backend=BumbleScannerBackend,
            scanner_kwargs={"radio": radio, **kwargs.pop("scanner_kwargs", {})},  # type: ignore[dict-item]
            timeout=timeout,
            **kwargs,  # type: ignore[arg-type]
        )

    return factory
