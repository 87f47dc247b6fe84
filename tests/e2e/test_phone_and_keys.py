"""One ceremony, every authenticator: the software phone (real tunnel server process, bumble
radio) and a software USB key (real CTAPHID under python-fido2), checked by `Fido2Server`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from bleak.exc import BleakBluetoothNotAvailableReason
from fido2.server import Fido2Server
from fido2.webauthn import ResidentKeyRequirement, UserVerificationRequirement

from hybrid.authenticator import ApprovalRequest, SoftwareSecurityKey
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.errors import BluetoothReason, BluetoothUnavailable, NoCredentials
from hybrid.status import Stage
from tests.conftest import USER, ClientFactory
from tests.e2e.keys import Person, UsbPort, ceremony_threads, key_idle
from tests.e2e.phones import verifying_phone
from tests.e2e.test_ceremonies import PhoneRunner

DISCOURAGED = UserVerificationRequirement.DISCOURAGED


@pytest.fixture
def person() -> Person:
    return Person(touches=False)


@pytest.fixture
def key(person: Person) -> Iterator[SoftwareSecurityKey]:
    with SoftwareSecurityKey.with_store(touch=person.touch, touch_timeout=20) as security_key:
        yield security_key


def path_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("hybrid-path-")]


async def test_phone_wins_and_the_key_stops_blinking(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
    key: SoftwareSecurityKey,
    person: Person,
) -> None:
    async def approve_once_the_key_blinks(request: ApprovalRequest) -> bool:
        await person.seen.wait()  # the user looks at the phone only after the key lit up
        return True

    client = make_client(on_status=person, security_keys=UsbPort(key))
    phone = PhoneRunner(verifying_phone(approve_once_the_key_blinks), advertiser, tunnel_url)
    options, state = relying_party.register_begin(
        USER, resident_key_requirement=ResidentKeyRequirement.REQUIRED
    )
    credential = await client.make_credential(dict(options["publicKey"]), phone)
    relying_party.register_complete(state, credential)
    assert credential["response"]["transports"] == ["hybrid", "internal"]
    assert (await phone.result()).command == "makeCredential"
    assert person.seen.is_set()  # the key was blinking meanwhile...
    assert await key_idle(key)  # ...and was cancelled when the phone won
    assert ceremony_threads() == [] and path_tasks() == []
    assert person.of(Stage.SHOWING_QR)[0].message.endswith("or touch your security key")
    assert person.of(Stage.DONE)[-1].message == "The phone answered"


async def test_key_wins_and_the_phone_path_is_closed(
    make_client: ClientFactory,
    relying_party: Fido2Server,
    key: SoftwareSecurityKey,
    person: Person,
) -> None:
    shown: list[str] = []

    def show_qr(url: str) -> None:  # the user ignores the code and touches the key
        shown.append(url)
        person.touch.set()

    client = make_client(on_status=person, security_keys=UsbPort(key))
    options, state = relying_party.register_begin(USER, user_verification=DISCOURAGED)
    credential = await client.make_credential(dict(options["publicKey"]), show_qr)
    relying_party.register_complete(state, credential)
    assert credential["response"]["transports"] == ["usb"]
    assert len(shown) == 1
    assert person.of(Stage.DONE)[-1].message == "The security key answered"
    assert Stage.PHONE_FOUND not in person.stages()
    assert ceremony_threads() == [] and path_tasks() == []  # scan and QR wait cancelled


async def test_key_without_a_passkey_is_dropped_while_the_phone_signs_in(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    relying_party: Fido2Server,
    key: SoftwareSecurityKey,
    person: Person,
) -> None:
    phone = PhoneRunner(verifying_phone(), advertiser, tunnel_url)
    options, state = relying_party.register_begin(
        USER, resident_key_requirement=ResidentKeyRequirement.REQUIRED
    )
    registered = await make_client(transports=("hybrid",)).make_credential(
        dict(options["publicKey"]), phone
    )
    credential = relying_party.register_complete(state, registered).credential_data
    assert credential is not None

    person.touches = True
    client = make_client(on_status=person, security_keys=UsbPort(key))
    request, state = relying_party.authenticate_begin()
    assertion = await client.get_assertion(dict(request["publicKey"]), phone)
    relying_party.authenticate_complete(state, [credential], assertion)
    (skipped,) = person.of(Stage.KEY_SKIPPED)
    assert isinstance(skipped.error, NoCredentials)
    assert person.of(Stage.DONE)[-1].message == "The phone answered"


async def test_bluetooth_off_with_a_key_uses_the_key(
    make_client: ClientFactory,
    relying_party: Fido2Server,
    key: SoftwareSecurityKey,
    person: Person,
) -> None:
    person.touches = True
    shown: list[str] = []
    client = make_client(
        on_status=person,
        security_keys=UsbPort(key),
        scanner_kwargs={"unavailable": BleakBluetoothNotAvailableReason.POWERED_OFF},
    )
    options, state = relying_party.register_begin(USER, user_verification=DISCOURAGED)
    credential = await client.make_credential(dict(options["publicKey"]), shown.append)
    relying_party.register_complete(state, credential)
    assert credential["response"]["transports"] == ["usb"]
    assert shown == []
    (unavailable,) = person.of(Stage.PHONE_UNAVAILABLE)
    assert isinstance(unavailable.error, BluetoothUnavailable)
    assert unavailable.error.reason is BluetoothReason.POWERED_OFF


async def test_bluetooth_off_and_no_key_fails_at_once(
    make_client: ClientFactory, relying_party: Fido2Server
) -> None:
    client = make_client(
        security_keys=list,
        scanner_kwargs={"unavailable": BleakBluetoothNotAvailableReason.POWERED_OFF},
    )
    options, _ = relying_party.authenticate_begin()
    with pytest.raises(BluetoothUnavailable) as caught:
        await asyncio.wait_for(client.get_assertion(dict(options["publicKey"]), print), 5)
    assert caught.value.reason is BluetoothReason.POWERED_OFF


async def test_caller_cancelling_closes_the_phone_path_and_stops_the_key(
    make_client: ClientFactory,
    relying_party: Fido2Server,
    key: SoftwareSecurityKey,
    person: Person,
) -> None:
    shown = asyncio.Event()
    client = make_client(on_status=person, security_keys=UsbPort(key))
    options, _ = relying_party.register_begin(USER, user_verification=DISCOURAGED)
    ceremony = asyncio.create_task(
        client.make_credential(dict(options["publicKey"]), lambda url: shown.set())
    )
    await asyncio.wait_for(asyncio.gather(shown.wait(), person.seen.wait()), 10)
    ceremony.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ceremony
    assert ceremony_threads() == [] and path_tasks() == []
    assert await key_idle(key)
