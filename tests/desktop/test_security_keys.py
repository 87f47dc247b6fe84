"""`HybridClient` with USB security keys only: the software key speaks real CTAPHID, so
python-fido2's real `CtapHidDevice` and `Fido2Client` run, and `Fido2Server` checks every result."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest
from fido2 import cbor
from fido2.server import Fido2Server
from fido2.utils import sha256, websafe_encode
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticationResponse,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hybrid.authenticator import CredentialStore, SoftwareSecurityKey, StoreCredentialCore
from hybrid.authenticator.extensions import CredProtect
from hybrid.authenticator.security_key_hid import HidCommand
from hybrid.ctap import CtapCommand, CtapStatus
from hybrid.desktop import HybridClient
from hybrid.errors import (
    CeremonyTimeout,
    CredentialExcluded,
    CtapStatusError,
    NoCredentials,
    SecurityKeyError,
    SecurityKeyReason,
)
from hybrid.status import Stage, Status
from tests.conftest import ORIGIN, RP_ID, USER
from tests.e2e.keys import Person, UsbPort, ceremony_threads, key_idle, no_qr

PIN = "4711"
DISCOURAGED = UserVerificationRequirement.DISCOURAGED
REQUIRED = UserVerificationRequirement.REQUIRED


@pytest.fixture
def person() -> Person:
    return Person()


@pytest.fixture
def key(person: Person) -> Iterator[SoftwareSecurityKey]:
    with SoftwareSecurityKey.with_store(touch=person.touch, touch_timeout=10) as security_key:
        yield security_key


def key_client(key: SoftwareSecurityKey, person: Person, **kwargs: Any) -> HybridClient:
    return HybridClient(
        ORIGIN,
        on_status=person,
        timeout=kwargs.pop("timeout", 20.0),
        transports=("usb",),
        security_keys=kwargs.pop("security_keys", UsbPort(key)),
        **kwargs,
    )


async def register(
    client: HybridClient, server: Fido2Server, uv: UserVerificationRequirement = DISCOURAGED
) -> AttestedCredentialData:
    options, state = server.register_begin(
        USER, resident_key_requirement=ResidentKeyRequirement.REQUIRED, user_verification=uv
    )
    credential = await client.make_credential(dict(options["publicKey"]), no_qr)
    assert credential["response"]["transports"] == ["usb"]
    assert credential["authenticatorAttachment"] == "cross-platform"
    auth_data = server.register_complete(state, credential)
    assert auth_data.credential_data is not None
    return auth_data.credential_data


async def test_key_registers_and_signs_in(
    key: SoftwareSecurityKey, person: Person, server: Fido2Server
) -> None:
    port = UsbPort(key)
    client = key_client(key, person, security_keys=port)
    credential = await register(client, server)
    for allow in ([], [credential]):  # discoverable, then with an allow list
        options, state = server.authenticate_begin(allow, user_verification=DISCOURAGED)
        assertion = await client.get_assertion(dict(options["publicKey"]), no_qr)
        assert assertion["authenticatorAttachment"] == "cross-platform"
        server.authenticate_complete(state, [credential], assertion)
    assert person.stages().count(Stage.TOUCH_KEY) == 3
    assert person.of(Stage.DONE)[-1].message == "The security key answered"
    assert ceremony_threads() == []
    assert len(port.connections) >= 3 and port.all_closed()


async def test_key_without_a_passkey_is_dropped_with_its_reason(
    key: SoftwareSecurityKey, person: Person, server: Fido2Server
) -> None:
    options, _ = server.authenticate_begin(user_verification=DISCOURAGED)
    with pytest.raises(NoCredentials) as caught:
        await key_client(key, person).get_assertion(dict(options["publicKey"]), no_qr)
    assert caught.value.status == CtapStatus.NO_CREDENTIALS and caught.value.rp_id == RP_ID
    (skipped,) = person.of(Stage.KEY_SKIPPED)
    assert skipped.error is caught.value
    assert ceremony_threads() == []


async def test_pin_key_is_picked_by_a_touch_then_asks_for_its_pin(
    person: Person, server: Fido2Server
) -> None:
    asked: list[str] = []

    async def on_pin() -> str:
        asked.append("pin")
        return PIN

    with SoftwareSecurityKey.with_store(touch=person.touch, pin=PIN) as key:
        client = key_client(key, person, on_pin=on_pin)
        credential = await register(client, server, uv=REQUIRED)
        options, state = server.authenticate_begin([credential], user_verification=REQUIRED)
        assertion = await client.get_assertion(dict(options["publicKey"]), no_qr)
        server.authenticate_complete(state, [credential], assertion)
    response = AuthenticationResponse.from_dict(assertion).response
    assert response.authenticator_data.is_user_verified()  # earned by the PIN (protocol 2)
    assert asked == ["pin", "pin"]
    stages = person.stages()
    first_pin = stages.index(Stage.ENTER_PIN)
    assert stages[first_pin - 1] is Stage.TOUCH_KEY  # picked by a touch before the PIN
    assert ceremony_threads() == []


async def test_pin_key_without_on_pin_is_skipped(person: Person, server: Fido2Server) -> None:
    options, _ = server.register_begin(USER, user_verification=REQUIRED)
    with (
        SoftwareSecurityKey.with_store(touch=person.touch, pin=PIN) as key,
        pytest.raises(SecurityKeyError) as caught,
    ):
        await key_client(key, person).make_credential(dict(options["publicKey"]), no_qr)
    assert caught.value.reason is SecurityKeyReason.PIN_REQUIRED
    assert [s.error for s in person.of(Stage.KEY_SKIPPED)] == [caught.value]
    assert Stage.TOUCH_KEY not in person.stages()  # never asked to touch a key it cannot use


async def test_wrong_pin_ends_the_ceremony_with_the_keys_status(
    person: Person, server: Fido2Server
) -> None:
    options, _ = server.register_begin(USER, user_verification=REQUIRED)
    with SoftwareSecurityKey.with_store(touch=person.touch, pin=PIN) as key:
        client = key_client(key, person, on_pin=lambda: "0000")
        with pytest.raises(CtapStatusError) as caught:
            await client.make_credential(dict(options["publicKey"]), no_qr)
        assert key.client_pin.retries == 7
    assert caught.value.status == CtapStatus.PIN_INVALID


async def test_uv_required_on_a_key_without_pin_is_named(
    key: SoftwareSecurityKey, person: Person, server: Fido2Server
) -> None:
    options, _ = server.register_begin(USER, user_verification=REQUIRED)
    with pytest.raises(SecurityKeyError) as caught:
        await key_client(key, person).make_credential(dict(options["publicKey"]), no_qr)
    assert caught.value.reason is SecurityKeyReason.UV_NOT_CONFIGURED


async def test_key_pulled_out_mid_ceremony_can_come_back(server: Fido2Server) -> None:
    person = Person(touches=False)
    key = SoftwareSecurityKey.with_store(touch=person.touch)

    async def react(status: Status) -> None:
        if status.stage is Stage.TOUCH_KEY and not person.of(Stage.KEY_SKIPPED):
            await asyncio.to_thread(key.unplug)  # out while it blinks
        elif status.stage is Stage.KEY_SKIPPED:
            key.replug()

    person.react = react
    options, state = server.register_begin(USER, user_verification=DISCOURAGED)
    with key:
        ceremony = asyncio.create_task(
            key_client(key, person).make_credential(dict(options["publicKey"]), no_qr)
        )
        while len(person.of(Stage.TOUCH_KEY)) < 2:  # blinking again once plugged back in
            await asyncio.sleep(0.02)
        person.touch.set()
        credential = await asyncio.wait_for(ceremony, 10)
    server.register_complete(state, credential)
    (skipped,) = person.of(Stage.KEY_SKIPPED)
    assert isinstance(skipped.error, SecurityKeyError)
    assert skipped.error.reason is SecurityKeyReason.REMOVED


async def test_caller_cancelling_stops_the_key_and_leaves_no_thread(server: Fido2Server) -> None:
    person = Person(touches=False)
    options, _ = server.register_begin(USER, user_verification=DISCOURAGED)
    with SoftwareSecurityKey.with_store(touch=person.touch) as key:
        ceremony = asyncio.create_task(
            key_client(key, person).make_credential(dict(options["publicKey"]), no_qr)
        )
        await asyncio.wait_for(person.seen.wait(), 10)
        ceremony.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ceremony
        assert ceremony_threads() == []  # joined before the cancellation returned
        assert await key_idle(key)  # CTAPHID CANCEL reached the key: it stopped blinking


async def test_no_key_plugged_in_waits_then_times_out(person: Person, server: Fido2Server) -> None:
    client = HybridClient(
        ORIGIN, on_status=person, timeout=1.5, transports=("usb",), security_keys=list
    )
    options, _ = server.authenticate_begin(user_verification=DISCOURAGED)
    with pytest.raises(CeremonyTimeout) as caught:
        await client.get_assertion(dict(options["publicKey"]), no_qr)
    assert caught.value.waiting_for == "security key"
    assert person.stages() == [Stage.INSERT_KEY]
    assert ceremony_threads() == []
    assert "QR" not in str(caught.value)  # no phone was offered: no advice to scan a code


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="transports"):
        HybridClient(ORIGIN, transports=("nfc",))
    with pytest.raises(ValueError, match="transports"):
        HybridClient(ORIGIN, transports=())
    with pytest.raises(ValueError, match="'usb'"):  # named as given, not as ('u', 's', 'b')
        HybridClient(ORIGIN, transports="usb")


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan")])
def test_a_timeout_that_is_not_positive_is_refused(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        HybridClient(ORIGIN, timeout=timeout)


async def test_extensions_are_processed_by_python_fido2_for_keys(
    person: Person, server: Fido2Server
) -> None:
    store = CredentialStore()
    options, state = server.register_begin(
        USER,
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=DISCOURAGED,
        extensions={
            "credProps": True,
            "credentialProtectionPolicy": "userVerificationOptionalWithCredentialIDList",
            "prf": {},
        },
    )
    with SoftwareSecurityKey(StoreCredentialCore(store), touch=person.touch) as key:
        credential = await key_client(key, person).make_credential(
            dict(options["publicKey"]), no_qr
        )
    server.register_complete(state, credential)
    # credProps and prf (over the key's hmac-secret) from python-fido2's extension processing.
    assert credential["clientExtensionResults"] == {
        "credProps": {"rk": True},
        "prf": {"enabled": True},
    }
    (stored,) = store.for_rp(RP_ID)
    assert stored.cred_protect is CredProtect.UV_OPTIONAL_WITH_CREDENTIAL_ID_LIST


async def test_prf_on_a_key_is_its_hmac_secret(person: Person, server: Fido2Server) -> None:
    """python-fido2 hashes the PRF inputs, encrypts them under the PIN protocol 2 shared
    secret and decrypts the key's answer; the result is checked against CTAP 2.1 §12.5
    computed here from the stored credential secret."""
    store = CredentialStore()
    with SoftwareSecurityKey(StoreCredentialCore(store), touch=person.touch) as key:
        client = key_client(key, person)
        options, state = server.register_begin(
            USER,
            resident_key_requirement=ResidentKeyRequirement.REQUIRED,
            user_verification=DISCOURAGED,
            extensions={"prf": {}},
        )
        registration = await client.make_credential(dict(options["publicKey"]), no_qr)
        credential = server.register_complete(state, registration).credential_data
        assert credential is not None

        async def evaluate(first: bytes, second: bytes | None = None) -> dict[str, Any]:
            salts = {"first": websafe_encode(first)}
            if second is not None:
                salts["second"] = websafe_encode(second)
            request, state = server.authenticate_begin(
                user_verification=DISCOURAGED, extensions={"prf": {"eval": salts}}
            )
            assertion = await client.get_assertion(dict(request["publicKey"]), no_qr)
            server.authenticate_complete(state, [credential], assertion)
            results: dict[str, Any] = assertion["clientExtensionResults"]["prf"]["results"]
            return results

        one = await evaluate(b"session key", b"other")
        again = await evaluate(b"session key")
    (stored,) = store.for_rp(RP_ID)
    assert stored.prf_secret is not None
    cred_random = hmac.digest(stored.prf_secret, b"CredRandomWithoutUV", "sha256")

    def expected(value: bytes) -> str:
        salt = sha256(b"WebAuthn PRF\x00" + value)
        return websafe_encode(hmac.digest(cred_random, salt, "sha256"))

    assert one == {"first": expected(b"session key"), "second": expected(b"other")}
    assert again == {"first": expected(b"session key")}


async def test_key_already_registered_is_dropped_as_excluded(
    key: SoftwareSecurityKey, person: Person, server: Fido2Server
) -> None:
    client = key_client(key, person)
    credential = await register(client, server)
    options, _ = server.register_begin(USER, [credential], user_verification=DISCOURAGED)
    with pytest.raises(CredentialExcluded) as caught:
        await client.make_credential(dict(options["publicKey"]), no_qr)
    assert caught.value.status == CtapStatus.CREDENTIAL_EXCLUDED
    assert [s.error for s in person.of(Stage.KEY_SKIPPED)] == [caught.value]


async def test_a_second_handle_disturbing_the_key_is_named(server: Fido2Server) -> None:
    """A naive `security_keys` opening a fresh handle every second: the new handle's INIT
    reply reaches the handle in use too (as with hidraw) and python-fido2 gives up on it.
    That is a `SecurityKeyError(DISTURBED)`, never a crash or a hang."""
    person = Person(touches=False)
    options, _ = server.register_begin(USER, user_verification=DISCOURAGED)
    with SoftwareSecurityKey.with_store(touch=person.touch) as key:
        client = key_client(key, person, security_keys=lambda: [key.open_device()])
        with pytest.raises(SecurityKeyError) as caught:
            await client.make_credential(dict(options["publicKey"]), no_qr)
    assert caught.value.reason is SecurityKeyReason.DISTURBED
    assert ceremony_threads() == []


class GarblingKey(SoftwareSecurityKey):
    """A key whose successful replies to one command carry a bad value under one key."""

    def __init__(self, command: int, field: int, value: object) -> None:
        super().__init__(StoreCredentialCore(None))
        self.garble = (command, field, value)

    def handle_cbor(self, request: bytes, command: HidCommand) -> bytes:
        reply = super().handle_cbor(request, command)
        code, field, value = self.garble
        if request[0] != code or reply[0] != CtapStatus.SUCCESS:
            return reply
        body: Any = cbor.decode(reply[1:])
        return reply[:1] + cbor.encode({**body, field: value})


@pytest.mark.parametrize(
    ("command", "field", "value"),
    [
        (CtapCommand.MAKE_CREDENTIAL, 2, b"short"),  # authData too short
        (CtapCommand.MAKE_CREDENTIAL, 2, "text"),  # authData not bytes
        (CtapCommand.MAKE_CREDENTIAL, 3, "x"),  # attStmt not a map
        (CtapCommand.GET_ASSERTION, 2, b"\x00" * 36),  # authData one byte short
    ],
)
async def test_a_key_sending_malformed_replies_is_a_security_key_error(
    person: Person, server: Fido2Server, command: int, field: int, value: object
) -> None:
    """python-fido2 parses the key's reply; what it cannot parse is the key's fault, named."""
    key = GarblingKey(command, field, value)
    with key:
        client = key_client(key, person)
        ceremony: Awaitable[object]
        if command == CtapCommand.GET_ASSERTION:
            await register(client, server)  # only getAssertion replies are garbled
            options, _ = server.authenticate_begin(user_verification=DISCOURAGED)
            ceremony = client.get_assertion(dict(options["publicKey"]), no_qr)
        else:
            ceremony = register(client, server)
        with pytest.raises(SecurityKeyError) as caught:
            await ceremony
    assert caught.value.reason is SecurityKeyReason.OTHER
    assert caught.value.device == key.descriptor.product_name
    assert [s.error for s in person.of(Stage.KEY_SKIPPED)] == [caught.value]
    assert ceremony_threads() == []
