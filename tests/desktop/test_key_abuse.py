"""Keys and applications that misbehave: a ceremony still ends, on time, with the right error.

The keys are software keys behind python-fido2's real `CtapHidDevice` (real CTAPHID).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fido2.ctap import CtapDevice
from fido2.server import Fido2Server
from fido2.webauthn import UserVerificationRequirement

from hybrid.authenticator import SoftwareSecurityKey, StoreCredentialCore
from hybrid.authenticator.security_key import PresenceCheck
from hybrid.desktop import HybridClient, key_finder, race
from hybrid.errors import CeremonyTimeout, HybridError, SecurityKeyError, SecurityKeyReason
from hybrid.status import Stage, Status
from tests.conftest import ORIGIN, USER
from tests.e2e.keys import Person, UsbPort, ceremony_threads, no_qr

DISCOURAGED = UserVerificationRequirement.DISCOURAGED
REQUIRED = UserVerificationRequirement.REQUIRED
PIN = "4711"


def key_client(key: SoftwareSecurityKey, person: Person, **kwargs: Any) -> HybridClient:
    keys = kwargs.pop("security_keys", UsbPort(key))
    return HybridClient(ORIGIN, on_status=person, transports=("usb",), security_keys=keys, **kwargs)


class StuckCore(StoreCredentialCore):
    """Firmware that hangs in makeCredential and ignores CTAPHID CANCEL (keepalives go on)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def make_credential(
        self, params: dict[Any, Any], user_verified: bool, confirm_presence: PresenceCheck
    ) -> dict[int, Any]:
        self.entered.set()
        self.release.wait(10)  # bounded, so that a regression fails instead of hanging forever
        return super().make_credential(params, user_verified, confirm_presence)


@pytest.fixture
def stuck() -> Iterator[tuple[SoftwareSecurityKey, StuckCore]]:
    core = StuckCore()
    key = SoftwareSecurityKey(core)
    yield key, core
    core.release.set()
    key.close()


async def test_key_ignoring_cancel_does_not_hold_the_timeout(
    stuck: tuple[SoftwareSecurityKey, StuckCore],
    server: Fido2Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(race, "CANCEL_GRACE", 0.3)
    key, core = stuck
    client = key_client(key, Person(), timeout=0.3)
    options, _ = server.register_begin(USER, user_verification=DISCOURAGED)
    ceremony = asyncio.create_task(client.make_credential(dict(options["publicKey"]), no_qr))
    finished, _ = await asyncio.wait([ceremony], timeout=3)
    assert ceremony in finished  # not held for as long as the key hangs (10 s here)
    with pytest.raises(CeremonyTimeout) as caught:
        ceremony.result()
    assert caught.value.waiting_for == "security key" and core.entered.is_set()
    for _ in range(100):  # the ceremony closed the key's handle: its thread ends at once
        if not ceremony_threads():
            break
        await asyncio.sleep(0.02)
    assert ceremony_threads() == []


async def test_on_status_failing_at_the_touch_prompt_is_the_applications_error(
    server: Fido2Server,
) -> None:
    bug = ValueError("on_status bug")  # a type python-fido2 also raises for bad key replies

    def on_status(status: Status) -> None:
        if status.stage is Stage.TOUCH_KEY:
            raise bug

    options, _ = server.register_begin(USER, user_verification=DISCOURAGED)
    with SoftwareSecurityKey.with_store(touch=threading.Event()) as key:
        client = HybridClient(
            ORIGIN, on_status=on_status, transports=("usb",), security_keys=UsbPort(key)
        )
        with pytest.raises(ValueError) as caught:
            await client.make_credential(dict(options["publicKey"]), no_qr)
    assert caught.value is bug  # not a SecurityKeyError blaming the key
    assert ceremony_threads() == []


async def test_on_pin_failing_or_returning_a_non_string_is_the_applications_error(
    server: Fido2Server,
) -> None:
    bug = KeyError("on_pin bug")

    async def failing_pin() -> str:
        raise bug

    options, _ = server.register_begin(USER, user_verification=REQUIRED)
    for on_pin, expected in ((failing_pin, KeyError), (lambda: 4711, TypeError)):
        person = Person()
        with SoftwareSecurityKey.with_store(touch=person.touch, pin=PIN) as key:
            client = key_client(key, person, on_pin=on_pin)
            with pytest.raises(expected) as caught:
                await client.make_credential(dict(options["publicKey"]), no_qr)
        assert not isinstance(caught.value, HybridError)
        assert expected is TypeError or caught.value is bug
        assert person.stages()[-1] is Stage.ENTER_PIN
        assert ceremony_threads() == []


async def test_security_keys_returning_something_else_than_devices_is_named(
    server: Fido2Server,
) -> None:
    options, _ = server.authenticate_begin(user_verification=DISCOURAGED)

    def paths() -> Any:
        return ["usb:1"]  # what an application's mistake may give

    client = HybridClient(ORIGIN, transports=("usb",), security_keys=paths)
    with pytest.raises(TypeError, match="CtapDevice") as caught:
        await client.get_assertion(dict(options["publicKey"]), no_qr)
    assert caught.value.__context__ is None  # not hidden behind a failure to close a string
    assert ceremony_threads() == []


async def test_security_keys_failing_mid_ceremony_ends_it_with_its_error(
    server: Fido2Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(key_finder, "KEY_POLL_INTERVAL", 0.05)
    bug = RuntimeError("security_keys bug")
    person = Person(touches=False)
    with SoftwareSecurityKey.with_store(touch=person.touch) as key:
        port = UsbPort(key)
        calls: list[int] = []

        def security_keys() -> list[CtapDevice]:
            calls.append(1)
            if len(calls) > 2:
                raise bug
            return port()

        client = key_client(key, person, security_keys=security_keys, timeout=5.0)
        options, _ = server.register_begin(USER, user_verification=DISCOURAGED)
        with pytest.raises(RuntimeError) as caught:
            await client.make_credential(dict(options["publicKey"]), no_qr)
    assert caught.value is bug  # not lost in the background while the key blinks on
    assert person.seen.is_set() and port.all_closed()
    assert ceremony_threads() == []


async def test_key_pulled_out_after_it_was_picked_says_to_try_again(server: Fido2Server) -> None:
    person = Person()
    key = SoftwareSecurityKey.with_store(touch=person.touch, pin=PIN)

    async def on_pin() -> str:  # the user pulls the key out while typing its PIN
        await asyncio.to_thread(key.unplug)
        return PIN

    options, _ = server.register_begin(USER, user_verification=REQUIRED)
    with key, pytest.raises(SecurityKeyError) as caught:
        await key_client(key, person, on_pin=on_pin).make_credential(
            dict(options["publicKey"]), no_qr
        )
    assert caught.value.reason is SecurityKeyReason.REMOVED
    # The ceremony ended with it (the key was its only path): plugging it back in is not enough.
    assert "try again" in str(caught.value)
    assert Stage.KEY_SKIPPED not in person.stages() and ceremony_threads() == []
