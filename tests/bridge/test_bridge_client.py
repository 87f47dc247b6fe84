"""python-fido2's unmodified `Fido2Client` and `CtapHidDevice` sign in through the bridge.

The bridge's CTAPHID side, responder and presenter run as in the daemon; only the kernel is
replaced by `LoopbackHidraw` (the VM tests use real uhid/hidraw). The phone is the software
phone on the virtual radio, through the real tunnel server; `Fido2Server` verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client
from fido2.ctap import CtapError
from fido2.hid import CtapHidDevice
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.bridge.daemon import Bridge
from hybrid.bridge.loopback import LoopbackHidraw, open_device
from hybrid.ctaphid import KeepaliveStatus
from tests.bridge.presenters import RecordingPresenter
from tests.conftest import ORIGIN, USER, ClientFactory
from tests.e2e.phones import verifying_phone
from tests.e2e.test_ceremonies import PhoneRunner


@dataclass
class BridgeSetup:
    bridge: Bridge
    presenter: RecordingPresenter
    phone: PhoneRunner
    device: CtapHidDevice
    client: Fido2Client


@contextlib.asynccontextmanager
async def running_bridge(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    *,
    answer: bool = True,
    ceremony_timeout: float = 30.0,
) -> AsyncIterator[BridgeSetup]:
    phone = PhoneRunner(verifying_phone(), advertiser, tunnel_url)
    presenter = RecordingPresenter(phone if answer else (lambda url: None))
    hybrid = make_client(on_status=lambda status: presenter.status(status))
    bridge = Bridge(hybrid, presenter, ceremony_timeout=ceremony_timeout)
    connection = LoopbackHidraw(bridge, asyncio.get_running_loop())
    serving = asyncio.create_task(connection.key.serve())
    try:
        device = await asyncio.to_thread(open_device, connection)
        client = await asyncio.to_thread(Fido2Client, device, DefaultClientDataCollector(ORIGIN))
        yield BridgeSetup(bridge, presenter, phone, device, client)
    finally:
        connection.key.close()
        serving.cancel()
        for task in phone.tasks:
            task.cancel()
        await asyncio.gather(serving, *phone.tasks, return_exceptions=True)


async def _register(
    setup: BridgeSetup, relying_party: Fido2Server, **kwargs: Any
) -> AttestedCredentialData:
    options, state = relying_party.register_begin(USER, **kwargs)
    registration = await asyncio.to_thread(setup.client.make_credential, options.public_key)
    auth_data = relying_party.register_complete(state, registration)
    assert auth_data.credential_data is not None
    return auth_data.credential_data


async def test_register_and_sign_in_with_an_allow_list_take_one_phone_ceremony_each(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    async with running_bridge(make_client, advertiser, tunnel_url) as setup:
        credential = await _register(
            setup, relying_party, resident_key_requirement=ResidentKeyRequirement.DISCOURAGED
        )
        assert len(setup.phone.urls) == 1
        request, state = relying_party.authenticate_begin(
            [credential], user_verification=UserVerificationRequirement.REQUIRED
        )
        # python-fido2 first probes the allowList silently (up=false, zero clientDataHash)
        selection = await asyncio.to_thread(setup.client.get_assertion, request.public_key)
        response = selection.get_response(0)
        relying_party.authenticate_complete(state, [credential], response)
        assert len(setup.phone.urls) == 2  # the probe did not cost a QR code
        assert response.response.authenticator_data.is_user_verified()
        assert [r.kind for r in setup.presenter.requests] == ["mc", "ga"]
        assert setup.presenter.requests[1].rp_id == relying_party.rp.id


async def test_discoverable_sign_in_and_an_excluded_credential(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    async with running_bridge(make_client, advertiser, tunnel_url) as setup:
        credential = await _register(
            setup, relying_party, resident_key_requirement=ResidentKeyRequirement.REQUIRED
        )
        request, state = relying_party.authenticate_begin()
        selection = await asyncio.to_thread(setup.client.get_assertion, request.public_key)
        relying_party.authenticate_complete(state, [credential], selection.get_response(0))

        # The phone holds the excluded credential: python-fido2's probe of the excludeList
        # gets no phone, but the list reaches the phone with the real request, which refuses.
        with pytest.raises(ClientError) as refused:
            await _register(setup, relying_party, credentials=[credential])
        assert refused.value.code == ClientError.ERR.DEVICE_INELIGIBLE
        assert len(setup.phone.urls) == 3


async def test_cancel_mid_ceremony_ends_it_with_keepalive_cancel(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    async with running_bridge(make_client, advertiser, tunnel_url, answer=False) as setup:
        cancel = threading.Event()
        keepalives: list[int] = []

        def on_keepalive(status: int) -> None:
            keepalives.append(status)
            cancel.set()  # the user closes the browser's dialog: python-fido2 sends CANCEL

        options, _ = relying_party.register_begin(USER)
        reply = await asyncio.to_thread(
            setup.device.call,
            0x10,  # CTAPHID_CBOR
            b"\x01" + _cbor_make_credential(options),
            cancel,
            on_keepalive,
        )
        assert reply == bytes([CtapError.ERR.KEEPALIVE_CANCEL])
        assert setup.presenter.qr_shown.is_set()
        assert setup.presenter.outcomes == ["Cancelled."]
        assert keepalives[0] == KeepaliveStatus.UP_NEEDED  # the QR code was up


async def test_phone_never_found_is_an_error_reply_and_the_user_is_told(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    async with running_bridge(
        make_client, advertiser, tunnel_url, answer=False, ceremony_timeout=1.0
    ) as setup:
        options, _ = relying_party.register_begin(USER)
        with pytest.raises(ClientError) as failed:
            await asyncio.to_thread(setup.client.make_credential, options.public_key)
        assert failed.value.code == ClientError.ERR.TIMEOUT
        assert setup.bridge.responder.last_error is not None
        (outcome,) = setup.presenter.outcomes
        assert outcome.startswith("Failed: ")


def _cbor_make_credential(options: Any) -> bytes:
    import cbor2

    return cbor2.dumps(
        {
            1: bytes(32),
            2: {"id": options.public_key.rp.id, "name": options.public_key.rp.name},
            3: {"id": b"user", "name": "user"},
            4: [{"type": "public-key", "alg": -7}],
        },
        canonical=True,
    )
