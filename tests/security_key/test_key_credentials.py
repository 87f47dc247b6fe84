"""The key over the shared passkey core: credProtect through python-fido2's Fido2Client and a
real Fido2Server, silent pre-flights, honest getInfo, and a store file shared across keys."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cbor2
import pytest
from fido2 import cbor
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2
from fido2.ctap2.pin import ClientPin, PinProtocolV2
from fido2.server import Fido2Server
from fido2.webauthn import (
    AuthenticatorData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.authenticator import CredentialStore, SoftwareSecurityKey
from hybrid.authenticator.security_key_hid import HidCommand
from hybrid.ctap import CtapStatus
from tests.security_key.conftest import PIN
from tests.security_key.test_fido2_client import Person

ORIGIN = "https://example.com"
RP = "example.com"
CDH = b"\x44" * 32
ALICE = PublicKeyCredentialUserEntity(id=b"alice-id", name="alice", display_name="Alice")
REQUIRED = UserVerificationRequirement.REQUIRED
DISCOURAGED = UserVerificationRequirement.DISCOURAGED
ES256_PARAMS: list[Mapping[str, Any]] = [{"type": "public-key", "alg": -7}]


@pytest.fixture
def server() -> Fido2Server:
    return Fido2Server(PublicKeyCredentialRpEntity(id=RP, name="Example"))


def client_for(key: SoftwareSecurityKey, pin: str | None) -> Fido2Client:
    return Fido2Client(
        key.open_device(), DefaultClientDataCollector(ORIGIN), Person(threading.Event(), pin)
    )


def register_protected(
    server: Fido2Server,
    client: Fido2Client,
    user_verification: UserVerificationRequirement,
    extensions: dict[str, Any],
) -> AuthenticatorData:
    """A discoverable registration with these credProtect inputs, verified by the server."""
    options, state = server.register_begin(
        ALICE,
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=user_verification,
        extensions=extensions,
    )
    return server.register_complete(state, client.make_credential(options.public_key))


def test_get_info_lists_only_what_the_key_implements() -> None:
    with SoftwareSecurityKey.with_store() as key:
        info = Ctap2(key.open_device()).get_info()
    assert info.extensions == ["credProtect", "hmac-secret"]  # no prf (phones) nor largeBlob
    assert "uv" not in info.options  # UV only through clientPin
    assert info.options["clientPin"] is False


def test_cred_protect_3_through_fido2_client_needs_the_pin(server: Fido2Server) -> None:
    store = CredentialStore()
    with SoftwareSecurityKey.with_store(store, pin=PIN) as key:
        client = client_for(key, PIN)
        auth_data = register_protected(
            server,
            client,
            REQUIRED,
            {
                "credentialProtectionPolicy": "userVerificationRequired",
                "enforceCredentialProtectionPolicy": True,
            },
        )
        assert auth_data.extensions == {"credProtect": 3}
        assert auth_data.is_user_verified()
        credential = auth_data.credential_data
        assert credential is not None
        (stored,) = store.for_rp(RP)
        assert stored.cred_protect == 3

        request, state = server.authenticate_begin(user_verification=REQUIRED)  # discoverable
        response = client.get_assertion(request.public_key).get_response(0)
        server.authenticate_complete(state, [credential], response)
        assert response.response.authenticator_data.is_user_verified()

        ctap2 = Ctap2(key.open_device())  # no PIN token: the credential stays hidden
        allow: list[Mapping[str, Any]] = [{"type": "public-key", "id": credential.credential_id}]
        for allow_list in (None, allow):  # hidden with and without the allowList
            with pytest.raises(CtapError) as hidden:
                ctap2.get_assertion(RP, CDH, allow_list)
            assert hidden.value.code == CtapStatus.NO_CREDENTIALS


def test_cred_protect_2_is_usable_by_id_without_uv(server: Fido2Server) -> None:
    with SoftwareSecurityKey.with_store() as key:
        client = client_for(key, None)
        auth_data = register_protected(
            server,
            client,
            DISCOURAGED,
            {"credentialProtectionPolicy": "userVerificationOptionalWithCredentialIDList"},
        )
        assert auth_data.extensions == {"credProtect": 2}
        credential = auth_data.credential_data
        assert credential is not None

        request, state = server.authenticate_begin([credential], user_verification=DISCOURAGED)
        response = client.get_assertion(request.public_key).get_response(0)
        server.authenticate_complete(state, [credential], response)
        assert not response.response.authenticator_data.is_user_verified()

        with pytest.raises(CtapError) as discoverable:
            Ctap2(key.open_device()).get_assertion(RP, CDH)
        assert discoverable.value.code == CtapStatus.NO_CREDENTIALS


def test_silent_pre_flight_needs_no_touch_and_claims_no_presence(server: Fido2Server) -> None:
    touch = threading.Event()
    with SoftwareSecurityKey.with_store(touch=touch, touch_timeout=0.5) as key:
        ctap2 = Ctap2(key.open_device())
        touch.set()
        created = ctap2.make_credential(
            CDH, {"id": RP}, {"id": b"u"}, [{"type": "public-key", "alg": -7}]
        )
        credential = created.auth_data.credential_data
        assert credential is not None
        allow: list[Mapping[str, Any]] = [{"type": "public-key", "id": credential.credential_id}]
        silent = ctap2.get_assertion(RP, CDH, allow, options={"up": False})  # nobody touches
        assert not silent.auth_data.is_user_present()
        assert silent.auth_data.counter == 1
        credential.public_key.verify(silent.auth_data + CDH, silent.signature)
        with pytest.raises(CtapError) as untouched:
            ctap2.get_assertion(RP, CDH, allow)
        assert untouched.value.code == CtapStatus.USER_ACTION_TIMEOUT


def test_without_rk_the_key_makes_credentials_used_by_id_alone(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    with SoftwareSecurityKey.with_store(path) as key:
        ctap2 = Ctap2(key.open_device())
        user = {"id": b"u", "name": "u"}
        ids = []
        for _ in range(2):  # the same user twice: both stay, neither replaces the other
            made = ctap2.make_credential(CDH, {"id": RP}, user, ES256_PARAMS)
            assert made.auth_data.credential_data is not None
            ids.append(made.auth_data.credential_data.credential_id)
        resident = ctap2.make_credential(CDH, {"id": RP}, user, ES256_PARAMS, options={"rk": True})
        assert resident.auth_data.credential_data is not None
        discoverable = ctap2.get_assertion(RP, CDH)
        assert discoverable.credential["id"] == resident.auth_data.credential_data.credential_id
        for credential_id in ids:
            allow: list[Mapping[str, Any]] = [{"type": "public-key", "id": credential_id}]
            assert ctap2.get_assertion(RP, CDH, allow).credential["id"] == credential_id
    reopened = CredentialStore(path)
    flags = {c.credential_id: c.discoverable for c in reopened.for_rp(RP)}
    assert flags == {ids[0]: False, ids[1]: False, discoverable.credential["id"]: True}


def test_keys_over_one_store_file_share_passkeys_and_counters(
    server: Fido2Server, tmp_path: Path
) -> None:
    path = tmp_path / "key.json"
    with SoftwareSecurityKey.with_store(path) as key:
        options, state = server.register_begin(ALICE, user_verification=DISCOURAGED)
        auth_data = server.register_complete(
            state, client_for(key, None).make_credential(options.public_key)
        )
    credential = auth_data.credential_data
    assert credential is not None
    counters = []
    for _ in range(2):  # a "replugged" key reading the same file each time
        with SoftwareSecurityKey.with_store(path) as key:
            request, state = server.authenticate_begin([credential], user_verification=DISCOURAGED)
            response = client_for(key, None).get_assertion(request.public_key).get_response(0)
            server.authenticate_complete(state, [credential], response)
            counters.append(response.response.authenticator_data.counter)
    # python-fido2's silent pre-flight and the real assertion each count once.
    assert counters == [2, 4]


_VALUES = st.recursive(
    st.one_of(
        st.integers(-3, 300),
        st.binary(max_size=40),
        st.booleans(),
        st.none(),
        st.sampled_from(["credProtect", "prf", "largeBlob", "hmac-secret", "up", "eval"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.integers(-2, 8), st.text(max_size=12)), inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(make=st.booleans(), extensions=_VALUES, options=_VALUES)
def test_any_extensions_and_options_give_a_status_never_a_failure(
    make: bool, extensions: Any, options: Any
) -> None:
    with SoftwareSecurityKey.with_store() as key:
        existing = key.handle_cbor(
            b"\x01" + cbor.encode({1: CDH, 2: {"id": RP}, 3: {"id": b"u"}, 4: ES256_PARAMS}),
            HidCommand(),
        )
        assert existing[0] == CtapStatus.SUCCESS
        params: dict[int, Any] = (
            {1: CDH, 2: {"id": RP}, 3: {"id": b"v"}, 4: ES256_PARAMS, 6: extensions, 7: options}
            if make
            else {1: RP, 2: CDH, 4: extensions, 5: options}
        )
        reply = key.handle_cbor(bytes([1 if make else 2]) + cbor2.dumps(params), HidCommand())
    assert reply[0] in {s.value for s in CtapStatus}
    assert reply[0] != CtapStatus.OTHER  # OTHER would mean an unexpected internal failure
    if reply[0] != CtapStatus.SUCCESS:
        assert len(reply) == 1


@pytest.mark.parametrize(
    ("tamper", "status"),
    [
        ("salt_auth", CtapStatus.PIN_AUTH_INVALID),
        ("salt_length", CtapStatus.INVALID_LENGTH),
        ("protocol", CtapStatus.INVALID_PARAMETER),
    ],
)
def test_hmac_secret_input_is_checked_before_any_output(tamper: str, status: int) -> None:
    """Raw CTAP2 through python-fido2's Ctap2 and ClientPin (protocol 2) on the key."""
    with SoftwareSecurityKey.with_store() as key:
        ctap2 = Ctap2(key.open_device())
        ctap2.make_credential(
            b"\1" * 32,
            {"id": "example.com", "name": "Example"},
            {"id": b"alice", "name": "alice"},
            [{"type": "public-key", "alg": -7}],
            extensions={"hmac-secret": True},
            options={"rk": True},
        )
        protocol = PinProtocolV2()
        key_agreement, shared = ClientPin(ctap2, protocol)._get_shared_secret()  # type: ignore[no-untyped-call]
        salts = b"\2" * (48 if tamper == "salt_length" else 32)
        salt_enc = protocol.encrypt(shared, salts)  # type: ignore[no-untyped-call]
        salt_auth = protocol.authenticate(shared, salt_enc)  # type: ignore[no-untyped-call]
        if tamper == "salt_auth":
            salt_auth = bytes(32)
        version = 1 if tamper == "protocol" else 2
        hmac_input = {1: key_agreement, 2: salt_enc, 3: salt_auth, 4: version}
        with pytest.raises(CtapError) as caught:
            ctap2.get_assertion("example.com", b"\3" * 32, extensions={"hmac-secret": hmac_input})
    assert caught.value.code == status
