"""clientPin protocol 2 (authenticator side), driven by python-fido2's real ClientPin over HID."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.cose import CoseKey
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2
from fido2.ctap2.pin import ClientPin, PinProtocolV2

from hybrid.authenticator import client_pin
from hybrid.authenticator.hmac_secret import HmacSecretInput
from hybrid.authenticator.security_key import SoftwareSecurityKey
from hybrid.ctap import CtapStatus
from hybrid.errors import CtapStatusError
from tests.security_key.conftest import PIN, RecordingCore

MC = ClientPin.PERMISSION.MAKE_CREDENTIAL
GA = ClientPin.PERMISSION.GET_ASSERTION
RP = "example.com"
CDH = b"\x42" * 32


def pin_client(ctap2: Ctap2) -> ClientPin:
    return ClientPin(ctap2, PinProtocolV2())


def status_of(excinfo: pytest.ExceptionInfo[CtapError]) -> int:
    return int(excinfo.value.code)


def test_key_agreement_matches_python_fido2_client_side() -> None:
    """Our KDF, AES and HMAC agree with python-fido2's independent client implementation."""
    auth = client_pin.ClientPinAuthenticator()
    client: Any = PinProtocolV2()  # python-fido2's client side, as the independent peer
    response = auth.handle({1: 2, 2: client_pin.ClientPinCommand.GET_KEY_AGREEMENT})
    assert response[1][3] == -25  # ECDH-ES+HKDF-256
    platform_key, client_secret = client.encapsulate(CoseKey.parse(response[1]))
    ours = auth._shared_secret({3: platform_key})
    assert ours == client_secret
    assert client.decrypt(client_secret, client_pin.encrypt(ours, b"\x07" * 32)) == b"\x07" * 32
    assert client_pin.decrypt(ours, client.encrypt(client_secret, b"\x09" * 64)) == b"\x09" * 64
    tag = client.authenticate(client_secret, b"message")
    assert client_pin.verify(ours, b"message", tag)
    assert not client_pin.verify(ours, b"massage", tag)


def test_get_info_reports_pin_state_and_protocol_2(key: SoftwareSecurityKey, ctap2: Ctap2) -> None:
    info = ctap2.get_info()
    assert info.versions == ["FIDO_2_0", "FIDO_2_1"]
    assert info.options == {"rk": True, "up": True, "clientPin": False, "pinUvAuthToken": True}
    assert info.pin_uv_protocols == [2]
    assert info.transports == ["usb"]
    assert info.min_pin_length == 4
    pin_client(ctap2).set_pin(PIN)
    assert ctap2.get_info().options["clientPin"] is True


def test_set_change_pin_and_tokens(ctap2: Ctap2) -> None:
    pins = pin_client(ctap2)
    with pytest.raises(CtapError) as no_pin:
        pins.get_pin_token(PIN, MC, RP)
    assert status_of(no_pin) == CtapStatus.PIN_NOT_SET
    pins.set_pin(PIN)
    assert pins.get_pin_retries() == (8, False)
    with pytest.raises(CtapError) as again:
        pins.set_pin("5678")
    assert status_of(again) == CtapStatus.NOT_ALLOWED
    pins.change_pin(PIN, "new-pin-ünïcode")
    with pytest.raises(CtapError) as old:
        pins.get_pin_token(PIN, MC, RP)
    assert status_of(old) == CtapStatus.PIN_INVALID
    assert len(pins.get_pin_token("new-pin-ünïcode", MC | GA, RP)) == 32
    assert len(pins.get_pin_token("new-pin-ünïcode")) == 32  # legacy getPinToken (0x05)
    assert pins.get_pin_retries() == (8, False)


def test_three_wrong_pins_block_until_replugged_and_eight_block_for_good(
    key: SoftwareSecurityKey, ctap2: Ctap2
) -> None:
    pins = pin_client(ctap2)
    pins.set_pin(PIN)
    seen = []
    for _ in range(3):
        with pytest.raises(CtapError) as wrong:
            pins.get_pin_token("0000", MC, RP)
        seen.append(status_of(wrong))
    assert seen == [CtapStatus.PIN_INVALID, CtapStatus.PIN_INVALID, CtapStatus.PIN_AUTH_BLOCKED]
    with pytest.raises(CtapError) as blocked:
        pins.get_pin_token(PIN, MC, RP)  # even the right PIN, and it costs no retry
    assert status_of(blocked) == CtapStatus.PIN_AUTH_BLOCKED
    assert pins.get_pin_retries() == (5, True)

    key.replug()
    pins = pin_client(Ctap2(key.open_device()))
    assert pins.get_pin_retries() == (5, False)  # retries survive the power cycle
    assert len(pins.get_pin_token(PIN, MC, RP)) == 32
    assert pins.get_pin_retries() == (8, False)

    statuses = []
    for attempt in range(8):
        if attempt % 3 == 0:
            key.replug()
            pins = pin_client(Ctap2(key.open_device()))
        with pytest.raises(CtapError) as wrong:
            pins.get_pin_token("0000", MC, RP)
        statuses.append(status_of(wrong))
    assert statuses[-1] == CtapStatus.PIN_BLOCKED
    key.replug()
    pins = pin_client(Ctap2(key.open_device()))
    with pytest.raises(CtapError) as dead:
        pins.get_pin_token(PIN, MC, RP)
    assert status_of(dead) == CtapStatus.PIN_BLOCKED
    assert pins.get_pin_retries()[0] == 0


def test_get_pin_retries_may_omit_the_protocol(ctap2: Ctap2) -> None:
    assert ctap2.send_cbor(Ctap2.CMD.CLIENT_PIN, {2: 1}) == {3: 8, 4: False}


def test_malformed_pin_hash_costs_no_retry(key: SoftwareSecurityKey, ctap2: Ctap2) -> None:
    pin_client(ctap2).set_pin(PIN)
    protocol: Any = PinProtocolV2()
    agreement = ctap2.client_pin(2, client_pin.ClientPinCommand.GET_KEY_AGREEMENT)[1]
    platform_key, _ = protocol.encapsulate(CoseKey.parse(agreement))
    with pytest.raises(CtapError) as short:
        ctap2.client_pin(
            2,
            client_pin.ClientPinCommand.GET_PIN_TOKEN,
            key_agreement=platform_key,
            pin_hash_enc=bytes(16),
        )
    assert status_of(short) == CtapStatus.INVALID_PARAMETER
    assert key.client_pin.retries == 8


def raw_set_pin_parts(ctap2: Ctap2, pin: str) -> dict[str, Any]:
    """Build setPIN fields by hand with python-fido2's protocol 2 as the peer."""
    protocol: Any = PinProtocolV2()
    agreement = ctap2.client_pin(2, client_pin.ClientPinCommand.GET_KEY_AGREEMENT)[1]
    platform_key, shared = protocol.encapsulate(CoseKey.parse(agreement))
    padded = pin.encode().ljust(64, b"\0")
    new_pin_enc = protocol.encrypt(shared, padded)
    return {
        "platform_key": platform_key,
        "new_pin_enc": new_pin_enc,
        "auth": protocol.authenticate(shared, new_pin_enc),
    }


@pytest.mark.parametrize(
    ("pin", "status"),
    [("123", CtapStatus.PIN_POLICY_VIOLATION), ("x" * 64, CtapStatus.PIN_POLICY_VIOLATION)],
)
def test_pin_policy_is_enforced_on_the_key(ctap2: Ctap2, pin: str, status: int) -> None:
    parts = raw_set_pin_parts(ctap2, pin)
    with pytest.raises(CtapError) as refused:
        ctap2.client_pin(
            2,
            client_pin.ClientPinCommand.SET_PIN,
            key_agreement=parts["platform_key"],
            new_pin_enc=parts["new_pin_enc"],
            pin_uv_param=parts["auth"],
        )
    assert status_of(refused) == status


def test_set_pin_with_a_bad_mac_or_bad_point_is_refused(ctap2: Ctap2) -> None:
    parts = raw_set_pin_parts(ctap2, "abcd")
    with pytest.raises(CtapError) as bad_mac:
        ctap2.client_pin(
            2,
            client_pin.ClientPinCommand.SET_PIN,
            key_agreement=parts["platform_key"],
            new_pin_enc=parts["new_pin_enc"],
            pin_uv_param=bytes(32),
        )
    assert status_of(bad_mac) == CtapStatus.PIN_AUTH_INVALID
    off_curve = {**parts["platform_key"], -3: bytes(32)}
    with pytest.raises(CtapError) as bad_point:
        ctap2.client_pin(
            2,
            client_pin.ClientPinCommand.SET_PIN,
            key_agreement=off_curve,
            new_pin_enc=parts["new_pin_enc"],
            pin_uv_param=parts["auth"],
        )
    assert status_of(bad_point) == CtapStatus.INVALID_PARAMETER
    with pytest.raises(CtapError) as protocol_1:
        ctap2.client_pin(1, client_pin.ClientPinCommand.GET_PIN_RETRIES)
    assert status_of(protocol_1) == CtapStatus.INVALID_PARAMETER
    with pytest.raises(CtapError) as unknown:
        ctap2.client_pin(2, 0x07)
    assert status_of(unknown) == CtapStatus.INVALID_SUBCOMMAND


def test_only_mc_and_ga_permissions_are_granted(ctap2: Ctap2) -> None:
    pins = pin_client(ctap2)
    pins.set_pin(PIN)
    with pytest.raises(CtapError) as cred_mgmt:
        pins.get_pin_token(PIN, ClientPin.PERMISSION.CREDENTIAL_MGMT, RP)
    assert status_of(cred_mgmt) == CtapStatus.UNAUTHORIZED_PERMISSION
    assert pins.get_pin_retries() == (8, False)  # refused before any PIN check


def make_credential(ctap2: Ctap2, **extra: Any) -> Any:
    return ctap2.make_credential(
        CDH,
        {"id": RP, "name": "Example"},
        {"id": b"user", "name": "user"},
        [{"type": "public-key", "alg": -7}],
        **extra,
    )


def test_pin_uv_auth_param_earns_uv_with_permission_and_rp_checks(
    core: RecordingCore, ctap2: Ctap2
) -> None:
    pins = pin_client(ctap2)
    protocol: Any = PinProtocolV2()
    pins.set_pin(PIN)

    with pytest.raises(CtapError) as required:
        make_credential(ctap2)
    assert status_of(required) == CtapStatus.PUAT_REQUIRED
    with pytest.raises(CtapError) as uv_option:
        ctap2.get_assertion(RP, CDH, options={"uv": True})
    assert status_of(uv_option) == CtapStatus.PUAT_REQUIRED

    token = pins.get_pin_token(PIN, MC, RP)
    with pytest.raises(CtapError) as forged:
        make_credential(ctap2, pin_uv_param=bytes(32), pin_uv_protocol=2)
    assert status_of(forged) == CtapStatus.PIN_AUTH_INVALID
    with pytest.raises(CtapError) as no_ga_right:
        ctap2.get_assertion(
            RP, CDH, pin_uv_param=protocol.authenticate(token, CDH), pin_uv_protocol=2
        )
    assert status_of(no_ga_right) == CtapStatus.PIN_AUTH_INVALID

    param = protocol.authenticate(token, CDH)
    attestation = make_credential(ctap2, pin_uv_param=param, pin_uv_protocol=2)
    assert attestation.auth_data.is_user_verified()
    assert core.calls[-1][2] is True
    assert 8 not in core.calls[-1][1] and 9 not in core.calls[-1][1]
    with pytest.raises(CtapError) as spent:
        make_credential(ctap2, pin_uv_param=param, pin_uv_protocol=2)
    assert status_of(spent) == CtapStatus.PIN_AUTH_INVALID

    other_rp = pins.get_pin_token(PIN, GA, "other.example")
    with pytest.raises(CtapError) as wrong_rp:
        ctap2.get_assertion(
            RP, CDH, pin_uv_param=protocol.authenticate(other_rp, CDH), pin_uv_protocol=2
        )
    assert status_of(wrong_rp) == CtapStatus.PIN_AUTH_INVALID

    created = attestation.auth_data.credential_data
    assert created is not None  # not discoverable (no rk), so it is named in the allowList
    allow: list[Mapping[str, Any]] = [{"type": "public-key", "id": created.credential_id}]
    assertion = ctap2.get_assertion(RP, CDH, allow)  # no token: allowed, but UV is not claimed
    assert not assertion.auth_data.is_user_verified()
    assert assertion.auth_data.is_user_present()


def test_without_a_pin_uv_is_never_claimed(core: RecordingCore, ctap2: Ctap2) -> None:
    with pytest.raises(CtapError) as uv_option:
        make_credential(ctap2, options={"uv": True})
    assert status_of(uv_option) == CtapStatus.INVALID_OPTION
    with pytest.raises(CtapError) as no_pin:
        make_credential(ctap2, pin_uv_param=bytes(32), pin_uv_protocol=2)
    assert status_of(no_pin) == CtapStatus.PIN_NOT_SET
    with pytest.raises(CtapError) as probe:
        make_credential(ctap2, pin_uv_param=b"", pin_uv_protocol=2)
    assert status_of(probe) == CtapStatus.PIN_NOT_SET
    attestation = make_credential(ctap2)
    assert not attestation.auth_data.is_user_verified()
    assert core.calls[-1][2] is False


def test_wrong_pin_protocol_in_a_request_is_refused(ctap2: Ctap2) -> None:
    pin_client(ctap2).set_pin(PIN)
    with pytest.raises(CtapError) as v1:
        make_credential(ctap2, pin_uv_param=bytes(16), pin_uv_protocol=1)
    assert status_of(v1) == CtapStatus.INVALID_PARAMETER


def test_initial_pin_and_peer_key_validation() -> None:
    with SoftwareSecurityKey.with_store(pin=PIN) as key:
        assert key.client_pin.pin_is_set and key.client_pin.retries == 8
    auth = client_pin.ClientPinAuthenticator()
    foreign = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    with pytest.raises(CtapStatusError) as wrong_curve:
        auth._shared_secret(
            {3: {1: 2, -1: 2, -2: foreign.x.to_bytes(48, "big"), -3: foreign.y.to_bytes(48, "big")}}
        )
    assert wrong_curve.value.status == CtapStatus.INVALID_PARAMETER


def issued_token(auth: client_pin.ClientPinAuthenticator) -> tuple[bytes, bytes]:
    """A getAssertion token for RP from the pure state machine, with python-fido2's client side
    as the peer and no HID at all; and the shared secret it was sent under."""
    peer: Any = PinProtocolV2()
    agreement = auth.handle({1: 2, 2: client_pin.ClientPinCommand.GET_KEY_AGREEMENT})[1]
    platform_key, shared = peer.encapsulate(CoseKey.parse(agreement))
    pin_hash_enc = peer.encrypt(shared, client_pin.pin_hash(PIN.encode()))
    response = auth.handle({1: 2, 2: 9, 3: platform_key, 6: pin_hash_enc, 9: int(GA), 10: RP})
    token = peer.decrypt(shared, response[2])
    return token, shared


def test_tokens_expire() -> None:
    auth = client_pin.ClientPinAuthenticator(PIN, token_lifetime=0.05)
    token, _ = issued_token(auth)
    peer: Any = PinProtocolV2()
    param = peer.authenticate(token, CDH)
    assert auth.verify_request(CDH, param, client_pin.Permission.GET_ASSERTION, RP)
    time.sleep(0.1)
    with pytest.raises(CtapStatusError) as expired:
        auth.verify_request(CDH, param, client_pin.Permission.GET_ASSERTION, RP)
    assert expired.value.status == CtapStatus.PIN_AUTH_INVALID


def test_tokens_and_hmac_secret_inputs_stay_out_of_reprs() -> None:
    """A pinUvAuthToken, a shared secret and decrypted salts are key material, not log text."""
    auth = client_pin.ClientPinAuthenticator(PIN)
    token, shared = issued_token(auth)
    assert token.hex() not in repr(auth._token).encode().hex()
    given = HmacSecretInput(shared_secret=shared, salts=(b"\x11" * 32, b"\x22" * 32))
    for secret in (shared, *given.salts):
        assert repr(secret) not in repr(given) and secret.hex() not in repr(given)
