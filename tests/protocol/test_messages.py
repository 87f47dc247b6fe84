"""Post-handshake message, framing and update messages (test-vectors.md §I, §J, §K)."""

import contextlib
import os
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.protocol import (
    Crypter,
    LinkingInfo,
    MessageType,
    PostHandshakeMessage,
    ProtocolError,
    compute_pairing_signature,
    decode_message,
    decode_update,
    encode_message,
    encode_update,
)
from hybrid.protocol.keys import point_bytes
from hybrid.protocol.messages import decode_padded_map, encode_padded_map
from tests.protocol.vectors import I1_ANDROID_CHROME, I2_IOS16, J4_REQUEST


def _linking() -> LinkingInfo:
    phone = ec.generate_private_key(ec.SECP256R1())
    desktop = ec.generate_private_key(ec.SECP256R1())
    return LinkingInfo(
        contact_id=os.urandom(150),
        link_id=os.urandom(8),
        link_secret=os.urandom(32),
        authenticator_public_key=point_bytes(phone.public_key()),
        authenticator_name="Pixel 9",
        handshake_signature=compute_pairing_signature(
            phone, point_bytes(desktop.public_key()), os.urandom(32)
        ),
    )


def test_i1_android_chrome_post_handshake() -> None:
    message = PostHandshakeMessage.decode(I1_ANDROID_CHROME)
    assert message.revision == 1
    assert message.features == ("ctap",)  # absent: CTAP only
    assert message.get_info is not None
    info = cbor2.loads(message.get_info)
    assert info[1] == ["FIDO_2_0", "FIDO_2_1"]
    assert info[9] == ["cable", "hybrid", "internal"]


def test_i2_ios16_post_handshake() -> None:
    message = PostHandshakeMessage.decode(I2_IOS16)
    assert message.get_info is not None
    assert cbor2.loads(message.get_info)[3] == bytes.fromhex("f24a8e70d0d3f82c293732523cc4de5a")


def test_revision_1_round_trip() -> None:
    message = PostHandshakeMessage(get_info=b"\xa0", features=("dc", "ctap"))
    encoded = message.encode()
    assert cbor2.loads(encoded) == {1: b"\xa0", 3: ["ctap", "dc"]}
    decoded = PostHandshakeMessage.decode(encoded)
    assert decoded.revision == 1 and decoded.features == ("ctap", "dc")


def test_revision_0_padded_with_linking() -> None:
    linking = _linking()
    message = PostHandshakeMessage(get_info=b"\xa0", linking=linking, revision=0)
    encoded = message.encode()
    assert len(encoded) % 512 == 0
    decoded = PostHandshakeMessage.decode(encoded)
    assert decoded.revision == 0 and decoded.linking == linking and decoded.supports_ctap


def test_k1_padded_cbor_sizes() -> None:
    empty = encode_padded_map({})
    assert len(empty) == 512 and empty == b"\xa0" + bytes(509) + b"\xfd\x01"
    assert decode_padded_map(empty) == {}
    big = encode_padded_map({1: bytes(512)})
    assert len(big) == 1024 and decode_padded_map(big) == {1: bytes(512)}


def test_k2_legacy_8bit_padding_decodes() -> None:
    for size in range(512):
        body = cbor2.dumps({1: bytes(size)})
        padded_len = (len(body) + 1 + 255) // 256 * 256
        extra = padded_len - len(body)
        legacy = body + bytes(extra - 1) + bytes([extra - 1])
        assert decode_padded_map(legacy) == {1: bytes(size)}


@pytest.mark.parametrize(
    "contents",
    [
        [1, 2],
        {3: "ctap"},
        {1: b"\xa0", 3: [1]},  # the non-string is skipped: getInfo without CTAP
        {3: ["ctap"]},
        {1: "not bytes", 3: ["ctap"]},
        {1: b"\xa0", 3: ["dc"]},
        {1: b"\xa0", 2: "not a map"},
        {1: b"\xa0", 2: {1: b"x"}},
    ],
)
def test_invalid_post_handshake(contents: Any) -> None:
    with pytest.raises(ProtocolError):
        PostHandshakeMessage.decode(cbor2.dumps(contents))


def test_non_string_features_are_skipped_as_chromium_does() -> None:
    message = PostHandshakeMessage.decode(cbor2.dumps({1: b"\xa0", 3: [7, "ctap", b"x"]}))
    assert message.features == ("ctap",)


def test_digital_credentials_only_phone() -> None:
    message = PostHandshakeMessage.decode(cbor2.dumps({3: ["dc"]}))
    assert not message.supports_ctap and message.get_info is None


def test_j_framing() -> None:
    assert encode_message(MessageType.SHUTDOWN) == b"\x00"
    assert decode_message(b"\x00") == (MessageType.SHUTDOWN, b"")
    assert decode_message(bytes.fromhex("0201020304")) == (MessageType.UPDATE, b"\x01\x02\x03\x04")
    with pytest.raises(ProtocolError):
        decode_message(b"\xff" * 16)
    with pytest.raises(ProtocolError):
        decode_message(b"\x04")
    with pytest.raises(ProtocolError):
        decode_message(b"")
    message_type, payload = decode_message(J4_REQUEST)
    assert message_type is MessageType.CTAP and payload[0] == 0x01
    assert encode_message(MessageType.CTAP, payload) == J4_REQUEST


@pytest.mark.parametrize("with_linking", [False, True])
def test_update_record_is_always_512_plus_16_bytes(with_linking: bool) -> None:
    linking = _linking() if with_linking else None
    frame = encode_update(linking)
    message_type, payload = decode_message(frame)
    assert message_type is MessageType.UPDATE
    assert decode_update(payload) == linking
    crypter = Crypter(read_key=bytes(32), write_key=bytes(32))
    assert len(crypter.encrypt(frame)) == 512 + 16


def test_update_without_key_1_and_garbage() -> None:
    assert decode_update(cbor2.dumps({0: bytes(10)})) is None
    with pytest.raises(ProtocolError):
        decode_update(b"\xff\xff")
    with pytest.raises(ProtocolError):
        decode_update(cbor2.dumps({1: {1: b"x"}}))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1100))
def test_any_plaintext_to_every_parser(data: bytes) -> None:
    for parser in (PostHandshakeMessage.decode, decode_message, decode_update, decode_padded_map):
        with contextlib.suppress(ProtocolError):
            parser(data)
