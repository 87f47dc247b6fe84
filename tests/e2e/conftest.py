"""End-to-end fixtures: a real tunnel server process, a virtual radio, a relying party."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.client import HybridClient

RP_ID = "example.com"
ORIGIN = "https://example.com"
USER = PublicKeyCredentialUserEntity(id=b"user-alice", name="alice", display_name="Alice")


@pytest.fixture(scope="module")
def tunnel_url() -> Iterator[str]:
    """A real `python -m tunnel_server` process on loopback, shared by a module's tests."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunnel_server", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (ws://\S+)", line)
    assert match, f"tunnel server did not start: {line!r}"
    yield match.group(1)
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
