"""End to end: python-fido2's Fido2Client registers and signs in with a PIN on the software key,
and a real Fido2Server verifies both, including the UV flag the PIN earned."""

from __future__ import annotations

import errno
import threading

import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap2.pin import ClientPin
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)

from hybrid.authenticator.security_key import SoftwareSecurityKey
from hybrid.ctap import CtapStatus
from tests.security_key.conftest import PIN, RecordingCore

ORIGIN = "https://example.com"
ALICE = PublicKeyCredentialUserEntity(id=b"alice-id", name="alice", display_name="Alice")
REQUIRED = UserVerificationRequirement.REQUIRED


class Person(UserInteraction):
    """Types the PIN when asked and touches the key when it blinks for presence."""

    def __init__(self, touch: threading.Event, pin: str | None) -> None:
        self.touch = touch
        self.pin = pin
        self.pin_requests: list[tuple[ClientPin.PERMISSION, str | None]] = []
        self.touches = 0

    def prompt_up(self) -> None:
        self.touches += 1
        self.touch.set()

    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        self.pin_requests.append((permissions, rp_id))
        return self.pin


@pytest.fixture
def server() -> Fido2Server:
    return Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))


def test_register_and_sign_in_with_a_pin(server: Fido2Server, core: RecordingCore) -> None:
    touch = threading.Event()
    person = Person(touch, PIN)
    with SoftwareSecurityKey(core, touch=touch, pin=PIN) as key:
        client = Fido2Client(key.open_device(), DefaultClientDataCollector(ORIGIN), person)

        options, state = server.register_begin(ALICE, user_verification=REQUIRED)
        registration = client.make_credential(options.public_key)
        auth_data = server.register_complete(state, registration)
        assert auth_data.is_user_verified() and auth_data.is_user_present()
        credential = auth_data.credential_data
        assert credential is not None

        request, state = server.authenticate_begin([credential], user_verification=REQUIRED)
        selection = client.get_assertion(request.public_key)
        response = selection.get_response(0)
        server.authenticate_complete(state, [credential], response)
        assert response.response.authenticator_data.is_user_verified()

    mc, ga = ClientPin.PERMISSION.MAKE_CREDENTIAL, ClientPin.PERMISSION.GET_ASSERTION
    assert [p & (mc | ga) for p, _ in person.pin_requests] == [mc, ga]
    assert person.touches == 2
    # python-fido2 first probes the allow list silently (up=false), then asks for the touch.
    assert [(name, uv) for name, _, uv in core.calls] == [
        ("make_credential", True),
        ("get_assertion", True),
        ("get_assertion", True),
    ]
    assert [params.get(5) for _, params, _ in core.calls[1:]] == [{"up": False}, None]


def test_wrong_pin_surfaces_as_client_error_with_the_ctap_status(
    server: Fido2Server, core: RecordingCore
) -> None:
    touch = threading.Event()
    with SoftwareSecurityKey(core, touch=touch, pin=PIN) as key:
        client = Fido2Client(
            key.open_device(), DefaultClientDataCollector(ORIGIN), Person(touch, "9999")
        )
        options, _ = server.register_begin(ALICE, user_verification=REQUIRED)
        with pytest.raises(ClientError) as refused:
            client.make_credential(options.public_key)
        assert refused.value.code == ClientError.ERR.BAD_REQUEST
        assert isinstance(refused.value.cause, Exception)
        assert getattr(refused.value.cause, "code", None) == CtapStatus.PIN_INVALID
        assert key.client_pin.retries == 7
    assert len(core.store) == 0


def test_without_a_pin_the_key_is_present_but_not_verified(
    server: Fido2Server, core: RecordingCore
) -> None:
    touch = threading.Event()
    with SoftwareSecurityKey(core, touch=touch) as key:
        client = Fido2Client(
            key.open_device(), DefaultClientDataCollector(ORIGIN), Person(touch, None)
        )
        options, state = server.register_begin(
            ALICE, user_verification=UserVerificationRequirement.DISCOURAGED
        )
        auth_data = server.register_complete(state, client.make_credential(options.public_key))
    assert auth_data.is_user_present() and not auth_data.is_user_verified()


def test_key_pulled_out_during_registration_is_an_error_not_a_hang(
    server: Fido2Server, core: RecordingCore, threads_before: int
) -> None:
    key = SoftwareSecurityKey(core, touch=threading.Event(), pin=PIN)

    class PullsTheKey(Person):
        def prompt_up(self) -> None:
            key.unplug()

    client = Fido2Client(
        key.open_device(), DefaultClientDataCollector(ORIGIN), PullsTheKey(threading.Event(), PIN)
    )
    options, _ = server.register_begin(ALICE, user_verification=REQUIRED)
    with pytest.raises(OSError) as gone:  # python-fido2 passes the OSError through unwrapped
        client.make_credential(options.public_key)
    assert gone.value.errno == errno.ENODEV
    assert len(core.store) == 0
    assert threading.active_count() == threads_before
