"""The record layer (test-vectors.md §H, §K3)."""

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.protocol import Crypter, ProtocolError
from hybrid.protocol.crypter import MAX_SEQUENCE, pad, unpad
from tests.protocol.vectors import H4_CIPHERTEXT, H4_PLAINTEXT, H4_READ_KEY, H4_WRITE_KEY


def _pair(a: bytes = b"\x01" * 32, b: bytes = b"\x02" * 32) -> tuple[Crypter, Crypter]:
    return Crypter(read_key=a, write_key=b), Crypter(read_key=b, write_key=a)


def test_h4_known_ciphertext() -> None:
    assert len(H4_PLAINTEXT) == 224
    crypter = Crypter(read_key=H4_READ_KEY, write_key=H4_WRITE_KEY)
    assert crypter.encrypt(H4_PLAINTEXT) == H4_CIPHERTEXT
    peer = Crypter(read_key=H4_WRITE_KEY, write_key=H4_READ_KEY)
    assert peer.decrypt(H4_CIPHERTEXT) == H4_PLAINTEXT
    assert not peer.uses_old_construction


def test_h4_old_construction_accepted_on_first_record_and_sticks() -> None:
    old_ct = AESGCM(H4_WRITE_KEY).encrypt(bytes(12), pad(H4_PLAINTEXT), b"\x02")
    assert old_ct[:-16] == H4_CIPHERTEXT[:-16]  # same body, other tag (AD 02)
    peer = Crypter(read_key=H4_WRITE_KEY, write_key=H4_READ_KEY)
    assert peer.decrypt(old_ct) == H4_PLAINTEXT
    assert peer.uses_old_construction
    second = AESGCM(H4_WRITE_KEY).encrypt(
        (1).to_bytes(4, "little") + bytes(8), pad(b"next"), b"\x02"
    )
    assert peer.decrypt(second) == b"next"
    reply = peer.encrypt(b"reply")
    expected = AESGCM(H4_READ_KEY).encrypt(bytes(12), pad(b"reply"), b"\x02")
    assert reply == expected


def test_old_construction_not_accepted_after_first_record() -> None:
    sender, receiver = _pair()
    receiver.decrypt(sender.encrypt(b"first"))
    old_ct = AESGCM(b"\x01" * 32).encrypt((1).to_bytes(4, "little") + bytes(8), pad(b"x"), b"\x02")
    with pytest.raises(ProtocolError):
        receiver.decrypt(old_ct)


@pytest.mark.parametrize(
    ("length", "padded", "last"),
    [
        (224, 256, 0x1F),
        (57, 64, 6),
        (111, 128, 0x10),
        (255, 256, 0),
        (0, 32, 31),
        (31, 32, 0),
        (32, 64, 31),
    ],
)
def test_k3_padding(length: int, padded: int, last: int) -> None:
    result = pad(bytes([0xAA]) * length)
    assert len(result) == padded and result[-1] == last
    assert unpad(result) == bytes([0xAA]) * length


def test_unpad_rejects() -> None:
    with pytest.raises(ProtocolError):
        unpad(b"")
    with pytest.raises(ProtocolError):
        unpad(b"\x00\x05")


def test_h5_round_trips_and_bit_flips() -> None:
    sender, receiver = _pair()
    for length in range(0, 530, 7):
        message = os.urandom(length)
        ciphertext = sender.encrypt(message)
        assert len(ciphertext) % 32 == 16
        index = length % len(ciphertext)
        flipped = ciphertext[:index] + bytes([ciphertext[index] ^ 1]) + ciphertext[index + 1 :]
        with pytest.raises(ProtocolError):
            receiver.decrypt(flipped)
        assert receiver.decrypt(ciphertext) == message


def test_h5_replay_and_reorder_fail() -> None:
    sender, receiver = _pair()
    first, second = sender.encrypt(b"1"), sender.encrypt(b"2")
    with pytest.raises(ProtocolError):
        receiver.decrypt(second)
    assert receiver.decrypt(first) == b"1"
    with pytest.raises(ProtocolError):
        receiver.decrypt(first)
    assert receiver.decrypt(second) == b"2"


def test_short_record_is_protocol_error() -> None:
    _, receiver = _pair()
    for length in range(16):
        with pytest.raises(ProtocolError):
            receiver.decrypt(bytes(length))


def test_record_with_invalid_padding_is_protocol_error() -> None:
    key = b"\x03" * 32
    receiver = Crypter(read_key=key, write_key=key)
    bad = AESGCM(key).encrypt(bytes(12), b"\x00" * 31 + b"\x40", None)
    with pytest.raises(ProtocolError):
        receiver.decrypt(bad)


def test_counter_limit() -> None:
    sender, receiver = _pair()
    sender._write_counter = MAX_SEQUENCE
    receiver._read_counter = MAX_SEQUENCE
    assert receiver.decrypt(sender.encrypt(b"last")) == b"last"
    with pytest.raises(ProtocolError):
        sender.encrypt(b"one too many")
    with pytest.raises(ProtocolError):
        receiver.decrypt(bytes(48))


def test_bad_keys() -> None:
    with pytest.raises(ProtocolError):
        Crypter(read_key=bytes(16), write_key=bytes(32))
    with pytest.raises(ProtocolError):
        Crypter(read_key="k" * 32, write_key=bytes(32))  # type: ignore[arg-type]


def test_repr_has_no_keys() -> None:
    crypter = Crypter(read_key=H4_READ_KEY, write_key=H4_WRITE_KEY)
    assert H4_READ_KEY.hex() not in repr(crypter)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600))
def test_any_record_decrypts_or_protocol_error(data: bytes) -> None:
    _, receiver = _pair()
    with pytest.raises(ProtocolError):
        receiver.decrypt(data)


@given(st.lists(st.binary(max_size=100), max_size=8))
def test_sequence_round_trip(messages: list[bytes]) -> None:
    sender, receiver = _pair()
    for message in messages:
        assert receiver.decrypt(sender.encrypt(message)) == message
