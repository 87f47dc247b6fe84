"""EIDs and encrypted BLE adverts (test-vectors.md §E)."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid.protocol import (
    Eid,
    KeyPurpose,
    ProtocolError,
    QRCode,
    decrypt_advert,
    derive,
    encrypt_advert,
)
from tests.protocol.vectors import (
    E1_PLAINTEXT,
    E4_ADVERT,
    E4_NONCE,
    E4_PLAINTEXT,
    E4_ROUTING_ID,
    KNOWN_ADVERT,
    KNOWN_ADVERT_NEW_URL,
    KNOWN_ADVERT_PLAINTEXT,
    KNOWN_ADVERT_SECRET,
    KNOWN_QR_POINT,
)

ZERO_KEY = derive(bytes(16), b"", KeyPurpose.EID_KEY, 64)


def test_e1_layout() -> None:
    eid = Eid.from_bytes(E1_PLAINTEXT)
    assert eid.nonce == bytes([9, 139, 115, 107, 54, 169, 140, 185, 164, 47])
    assert eid.routing_id == bytes([9, 10, 11])
    assert eid.domain_id == 0x01FF
    assert eid.to_bytes() == E1_PLAINTEXT


@pytest.mark.parametrize("length", [*range(15), 17])
def test_e1_wrong_lengths(length: int) -> None:
    with pytest.raises(ProtocolError):
        Eid.from_bytes(bytes(length))


def test_e1_unassigned_domain_and_reserved_byte() -> None:
    with pytest.raises(ProtocolError):
        Eid.from_bytes(E1_PLAINTEXT[:15] + b"\x00")  # domain 0x00FF
    with pytest.raises(ProtocolError):
        Eid.from_bytes(b"\x01" + E1_PLAINTEXT[1:])


def test_e2_known_advert() -> None:
    key = derive(KNOWN_ADVERT_SECRET, b"", KeyPurpose.EID_KEY, 64)
    eid = decrypt_advert(key, KNOWN_ADVERT)
    assert eid is not None
    assert eid.to_bytes() == KNOWN_ADVERT_PLAINTEXT
    assert eid.nonce.hex() == "8bb5c5c9a44d913a5eb2"
    assert eid.routing_id == bytes([2, 101, 85])
    assert eid.domain_id == 0
    assert encrypt_advert(key, eid) == KNOWN_ADVERT


def test_qr_key_schedule_against_the_known_advert() -> None:
    """The QR code derives the advert key and tunnel ID of §E2 from its secret."""
    qr = QRCode(public_key=KNOWN_QR_POINT, secret=KNOWN_ADVERT_SECRET)
    eid = decrypt_advert(qr.eid_key, KNOWN_ADVERT)
    assert eid is not None and eid.to_bytes() == KNOWN_ADVERT_PLAINTEXT
    assert KNOWN_ADVERT_NEW_URL.endswith(qr.tunnel_id.hex().upper())
    assert qr.psk(eid) == derive(KNOWN_ADVERT_SECRET, KNOWN_ADVERT_PLAINTEXT, KeyPurpose.PSK, 32)


def test_e4_round_trip_and_fixed_advert() -> None:
    eid = Eid(nonce=E4_NONCE, routing_id=E4_ROUTING_ID, domain_id=0xF980)
    assert eid.to_bytes() == E4_PLAINTEXT
    advert = encrypt_advert(ZERO_KEY, eid)
    assert advert == E4_ADVERT
    assert decrypt_advert(ZERO_KEY, advert) == eid


def test_e4_bit_flips_and_truncation() -> None:
    flipped_body = bytes([E4_ADVERT[0] ^ 1]) + E4_ADVERT[1:]
    flipped_tag = E4_ADVERT[:16] + bytes([E4_ADVERT[16] ^ 1]) + E4_ADVERT[17:]
    assert decrypt_advert(ZERO_KEY, flipped_body) is None
    assert decrypt_advert(ZERO_KEY, flipped_tag) is None
    for length in range(20):
        assert decrypt_advert(ZERO_KEY, E4_ADVERT[:length]) is None


def test_longer_service_data_decrypts_first_20_bytes() -> None:
    eid = decrypt_advert(ZERO_KEY, E4_ADVERT + b"\xa1\x01\x19\x00\x80")
    assert eid is not None and eid.domain_id == 0xF980


def test_e5_domain_255_encrypts_but_does_not_decrypt() -> None:
    key = os.urandom(64)
    eid = Eid(nonce=os.urandom(10), routing_id=bytes([9, 10, 11]), domain_id=255)
    assert decrypt_advert(key, encrypt_advert(key, eid)) is None
    good = Eid(nonce=os.urandom(10), routing_id=bytes([9, 10, 11]), domain_id=0x0102)
    assert decrypt_advert(key, encrypt_advert(key, good)) == good


def test_other_key_does_not_match() -> None:
    assert decrypt_advert(os.urandom(64), E4_ADVERT) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"nonce": bytes(9), "routing_id": bytes(3), "domain_id": 0},
        {"nonce": bytes(10), "routing_id": bytes(4), "domain_id": 0},
        {"nonce": bytes(10), "routing_id": bytes(3), "domain_id": 65536},
        {"nonce": bytes(10), "routing_id": bytes(3), "domain_id": -1},
        {"nonce": "x" * 10, "routing_id": bytes(3), "domain_id": 0},
    ],
)
def test_eid_constructor_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        Eid(**kwargs)  # type: ignore[arg-type]


def test_bad_key_length_is_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decrypt_advert(bytes(32), E4_ADVERT)


@given(st.binary(max_size=40))
def test_any_service_data_is_none_or_eid(data: bytes) -> None:
    result = decrypt_advert(ZERO_KEY, data)
    assert result is None or isinstance(result, Eid)


@given(
    st.binary(min_size=10, max_size=10),
    st.binary(min_size=3, max_size=3),
    st.one_of(st.integers(0, 1), st.integers(256, 65535)),
)
def test_round_trip_property(nonce: bytes, routing_id: bytes, domain_id: int) -> None:
    eid = Eid(nonce=nonce, routing_id=routing_id, domain_id=domain_id)
    assert decrypt_advert(ZERO_KEY, encrypt_advert(ZERO_KEY, eid)) == eid
    assert Eid.from_bytes(eid.to_bytes()) == eid
