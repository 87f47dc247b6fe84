"""The example relying party verifies what the desktop role produces, orphaned passkeys too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from examples.relying_party import RelyingParty
from hybrid.authenticator import SoftwareAuthenticator, answer_qr
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.desktop import HybridClient
from hybrid.webauthn import UnknownCredential
from tunnel_server import ServerConfig, TunnelServer


async def test_register_sign_in_and_orphaned_passkey(tmp_path: Path) -> None:
    state = tmp_path / "rp.json"
    phone = SoftwareAuthenticator()
    async with (
        TunnelServer(ServerConfig(host="127.0.0.1", port=0)) as server,
        VirtualRadio() as radio,
    ):
        advertiser = await BumbleAdvertiser.from_radio(radio, "phone")
        client = HybridClient(
            origin="https://example.com",
            tunnel_url=server.url,
            scanner_backend=BumbleScannerBackend,
            scanner_kwargs={"radio": radio},
            timeout=20,
        )
        tasks: list[asyncio.Task[object]] = []

        def show_qr(url: str) -> None:
            tasks.append(asyncio.create_task(answer_qr(url, phone, advertiser, server.url)))

        credential = await client.make_credential(
            RelyingParty(state).register_begin("alice"), show_qr
        )
        credential_id = RelyingParty(state).register_finish(credential)
        assertion = await client.get_assertion(RelyingParty(state).sign_in_begin(), show_qr)
        assert RelyingParty(state).sign_in_finish(assertion) == credential_id

        RelyingParty(state).forget(credential_id)  # the site deletes it; the phone keeps it
        assertion = await client.get_assertion(RelyingParty(state).sign_in_begin(), show_qr)
        with pytest.raises(UnknownCredential, match="remove it from your phone"):
            RelyingParty(state).sign_in_finish(assertion)
        await asyncio.gather(*tasks)
        await advertiser.close()
