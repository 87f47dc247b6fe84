"""Desktop (`HybridClient`) ↔ real tunnel server process ↔ phone (`answer_qr`), over bumble.

Every credential is checked by `fido2.server.Fido2Server`, as a relying party would.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from bleak.exc import BleakBluetoothNotAvailableReason
from fido2.server import Fido2Server
from fido2.webauthn import AttestedCredentialData, ResidentKeyRequirement

from hybrid.authenticator import ApprovalRequest, SoftwareAuthenticator
from hybrid.authenticator.phone import PhoneSessionResult, answer_qr
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.ctap import CtapStatus
from hybrid.desktop import HybridClient
from hybrid.errors import (
    BluetoothReason,
    BluetoothUnavailable,
    CeremonyTimeout,
    CredentialExcluded,
    NoCredentials,
    OperationDenied,
    PeerError,
    PeerReason,
    TunnelError,
)
from hybrid.protocol import Eid, QRCode, encrypt_advert
from hybrid.status import Stage, Status
from tests.conftest import USER, StatusLog
from tests.e2e.phones import verifying_phone

ClientFactory = Callable[..., HybridClient]


class PhoneRunner:
    """`show_qr` callback that has the software phone answer the QR code."""

    def __init__(
        self,
        auth: SoftwareAuthenticator,
        advertiser: BumbleAdvertiser,
        tunnel_url: str,
        timeout: float = 20.0,
    ) -> None:
        self.timeout = timeout
        self.auth = auth
        self.advertiser = advertiser
        self.tunnel_url = tunnel_url
        self.tasks: list[asyncio.Task[PhoneSessionResult]] = []
        self.urls: list[str] = []

    def __call__(self, url: str) -> None:
        self.urls.append(url)
        self.tasks.append(
            asyncio.create_task(
                answer_qr(
                    url,
                    self.auth,
                    self.advertiser,
                    self.tunnel_url,
                    timeout=self.timeout,
                    link=True,
                )
            )
        )

    async def result(self) -> PhoneSessionResult:
        return await self.tasks[-1]


async def _register(
    client: HybridClient, phone: PhoneRunner, relying_party: Fido2Server, **kwargs: Any
) -> AttestedCredentialData:
    options, state = relying_party.register_begin(
        USER, resident_key_requirement=ResidentKeyRequirement.REQUIRED, **kwargs
    )
    credential = await client.make_credential(dict(options["publicKey"]), phone)
    assert (await phone.result()).command == "makeCredential"
    auth_data = relying_party.register_complete(state, credential)
    assert auth_data.credential_data is not None
    return auth_data.credential_data


async def test_register_then_sign_in_verified_by_relying_party(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    log = StatusLog([])
    client = make_client(on_status=log)
    phone = PhoneRunner(verifying_phone(), advertiser, tunnel_url)
    credential = await _register(client, phone, relying_party)
    assert client.linking_info is not None  # validated against the handshake hash

    for allow in ([], [credential]):  # discoverable, then with an allow list
        options, state = relying_party.authenticate_begin(allow)
        assertion = await client.get_assertion(dict(options["publicKey"]), phone)
        assert assertion["authenticatorAttachment"] == "cross-platform"
        relying_party.authenticate_complete(state, [credential], assertion)
        result = await phone.result()
        assert (result.command, result.status, result.linked) == ("getAssertion", 0, True)

    assert len(set(phone.urls)) == 3  # a fresh QR code per ceremony
    assert all(url.startswith("FIDO:/") for url in phone.urls)
    assert "Phone found nearby" in log.messages and "Confirm on your phone" in log.messages


async def test_declined_on_the_phone(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    asked: list[ApprovalRequest] = []

    async def decline(request: ApprovalRequest) -> bool:
        asked.append(request)
        return False

    phone = PhoneRunner(verifying_phone(decline), advertiser, tunnel_url)
    options, _ = relying_party.register_begin(USER)
    with pytest.raises(OperationDenied) as caught:
        await make_client().make_credential(dict(options["publicKey"]), phone)
    assert caught.value.status == CtapStatus.OPERATION_DENIED
    assert asked and asked[0].kind == "create" and asked[0].rp_id == "example.com"
    assert (await phone.result()).status == 0x27


async def test_no_passkey_for_the_site(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    phone = PhoneRunner(verifying_phone(), advertiser, tunnel_url)
    options, _ = relying_party.authenticate_begin()
    with pytest.raises(NoCredentials) as caught:
        await make_client().get_assertion(dict(options["publicKey"]), phone)
    assert (caught.value.status, caught.value.rp_id) == (CtapStatus.NO_CREDENTIALS, "example.com")
    assert (await phone.result()).status == 0x2E


async def test_excluded_credential_asks_first(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    asked: list[str] = []

    def approve(request: ApprovalRequest) -> bool:
        asked.append(request.kind)
        return True

    client = make_client()
    phone = PhoneRunner(verifying_phone(approve), advertiser, tunnel_url)
    credential = await _register(client, phone, relying_party)
    options, _ = relying_party.register_begin(USER, credentials=[credential])
    with pytest.raises(CredentialExcluded):
        await client.make_credential(dict(options["publicKey"]), phone)
    assert asked == ["create", "create"]


async def test_bluetooth_off_is_reported_before_any_qr_code(
    make_client: ClientFactory, relying_party: Fido2Server
) -> None:
    shown: list[str] = []
    client = make_client(
        scanner_kwargs={"unavailable": BleakBluetoothNotAvailableReason.POWERED_OFF}
    )
    options, _ = relying_party.authenticate_begin()
    started = time.monotonic()
    with pytest.raises(BluetoothUnavailable) as caught:
        await client.get_assertion(dict(options["publicKey"]), shown.append)
    assert time.monotonic() - started < 5  # a hang guard, not a benchmark
    assert caught.value.reason is BluetoothReason.POWERED_OFF
    assert shown == []
    with pytest.raises(BluetoothUnavailable):
        await client.check_bluetooth()


async def test_no_system_dbus_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The OS backend (BlueZ) with no system bus socket: NO_DBUS, not a hang."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-such-socket")
    client = HybridClient(origin="https://example.com")
    with pytest.raises(BluetoothUnavailable) as caught:
        await asyncio.wait_for(client.check_bluetooth(), 10)
    assert caught.value.reason is BluetoothReason.NO_DBUS


async def test_foreign_adverts_are_ignored(
    make_client: ClientFactory,
    radio: VirtualRadio,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    noise = await BumbleAdvertiser.from_radio(radio, "stranger")
    other_qr, _ = QRCode.generate()
    # A valid advert for someone else's QR code, on the same UUID, before our phone shows up.
    stranger = Eid(os.urandom(10), b"\x01\x02\x03", 0)
    await noise.advertise(encrypt_advert(other_qr.eid_key, stranger))
    phone = PhoneRunner(verifying_phone(), advertiser, tunnel_url)
    try:
        await _register(make_client(), phone, relying_party)
    finally:
        await noise.close()


async def test_phone_hint_when_no_advert_arrives(
    make_client: ClientFactory, relying_party: Fido2Server
) -> None:
    statuses: list[Status] = []
    client = make_client(timeout=1.0, on_status=statuses.append, phone_hint_after=0.2)
    options, _ = relying_party.authenticate_begin()
    with pytest.raises(CeremonyTimeout) as caught:
        await client.get_assertion(dict(options["publicKey"]), lambda url: None)
    assert isinstance(caught.value, TimeoutError)
    # Both are offered by default (no key was plugged in here).
    assert (caught.value.waiting_for, caught.value.seconds) == ("phone or security key", 1.0)
    hints = [s for s in statuses if s.stage is Stage.PHONE_NOT_SEEN]
    assert len(hints) == 1 and "Bluetooth" in hints[0].message


async def test_phone_only_timeout_advises_no_security_key(
    make_client: ClientFactory, relying_party: Fido2Server
) -> None:
    client = make_client(timeout=0.3, transports=("hybrid",))
    options, _ = relying_party.authenticate_begin()
    with pytest.raises(CeremonyTimeout) as caught:
        await client.get_assertion(dict(options["publicKey"]), lambda url: None)
    assert caught.value.waiting_for == "phone"
    assert "security key" not in str(caught.value)  # none was offered


async def test_tunnel_server_down(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
    unused_tcp_port: int,
) -> None:
    dead = f"ws://127.0.0.1:{unused_tcp_port}"
    with pytest.raises(TunnelError) as caught:
        await answer_qr(QRCode.generate()[0].to_url(), verifying_phone(), advertiser, dead)
    assert caught.value.http_status is None  # nothing answered at all
    # The phone reached a live server but the desktop's server is down.
    phone = PhoneRunner(verifying_phone(), advertiser, tunnel_url, timeout=2.0)
    options, _ = relying_party.authenticate_begin()
    with pytest.raises(TunnelError):
        await make_client(tunnel_url=dead).get_assertion(dict(options["publicKey"]), phone)
    with pytest.raises(CeremonyTimeout):
        await asyncio.wait_for(phone.result(), 30)  # nobody connects: the phone gives up


async def test_phone_vanishes_mid_way(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    started = asyncio.Event()

    async def never(request: ApprovalRequest) -> bool:
        started.set()
        await asyncio.sleep(3600)
        return True

    phone = PhoneRunner(verifying_phone(never), advertiser, tunnel_url)
    options, _ = relying_party.authenticate_begin()
    desktop = asyncio.create_task(make_client().get_assertion(dict(options["publicKey"]), phone))
    await asyncio.wait_for(started.wait(), 10)
    phone.tasks[-1].cancel()  # the phone app is killed while asking its user
    with pytest.raises(PeerError) as caught:
        await asyncio.wait_for(desktop, 10)
    assert caught.value.reason is PeerReason.CLOSED and caught.value.close_code is not None


async def test_cancelling_the_desktop_closes_everything(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: ApprovalRequest) -> bool:
        started.set()
        await release.wait()
        return True

    phone = PhoneRunner(verifying_phone(slow), advertiser, tunnel_url)
    options, _ = relying_party.authenticate_begin()
    desktop = asyncio.create_task(make_client().get_assertion(dict(options["publicKey"]), phone))
    await asyncio.wait_for(started.wait(), 10)
    desktop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await desktop
    release.set()
    # The phone answers into a closed tunnel and ends (with or without an error), never hangs.
    done, _ = await asyncio.wait(phone.tasks, timeout=10)
    assert done == set(phone.tasks)
