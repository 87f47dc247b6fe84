"""The example relying party verifies what the desktop role produces, orphaned passkeys too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fido2.utils import websafe_decode

from examples.relying_party import RelyingParty
from hybrid.authenticator import SoftwareAuthenticator, answer_qr, approve_all
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.webauthn import UnknownCredential
from tests.conftest import ClientFactory


async def test_register_sign_in_and_orphaned_passkey(
    tmp_path: Path, make_client: ClientFactory, advertiser: BumbleAdvertiser, tunnel_url: str
) -> None:
    state = tmp_path / "rp.json"
    phone = SoftwareAuthenticator(verifies_user=True, approve=approve_all)
    client = make_client()
    tasks: list[asyncio.Task[object]] = []

    def show_qr(url: str) -> None:
        tasks.append(asyncio.create_task(answer_qr(url, phone, advertiser, tunnel_url)))

    credential = await client.make_credential(RelyingParty(state).register_begin("alice"), show_qr)
    credential_id = RelyingParty(state).register_finish(credential)
    assertion = await client.get_assertion(RelyingParty(state).sign_in_begin(), show_qr)
    assert RelyingParty(state).sign_in_finish(assertion) == credential_id

    RelyingParty(state).forget(credential_id)  # the site deletes it; the phone keeps it
    assertion = await client.get_assertion(RelyingParty(state).sign_in_begin(), show_qr)
    with pytest.raises(UnknownCredential) as caught:
        RelyingParty(state).sign_in_finish(assertion)
    assert (caught.value.rp_id, caught.value.credential_id) == (
        "example.com",
        websafe_decode(credential_id),
    )
    await asyncio.gather(*tasks)
