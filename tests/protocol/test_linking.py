"""Linking info and pairing signatures (test-vectors.md §L)."""

import os
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hybrid.protocol import (
    LinkingInfo,
    ProtocolError,
    compute_pairing_signature,
    verify_pairing_signature,
)
from hybrid.protocol.keys import point_bytes


def _keys() -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePrivateKey]:
    return ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())


def test_signature_verifies_both_ways_and_flips_fail() -> None:
    phone, desktop = _keys()
    handshake_hash = b"\x01" + bytes(31)
    signature = compute_pairing_signature(phone, point_bytes(desktop.public_key()), handshake_hash)
    assert len(signature) == 32
    phone_point = point_bytes(phone.public_key())
    assert verify_pairing_signature(desktop, phone_point, handshake_hash, signature)
    flipped_hash = b"\x00" + handshake_hash[1:]
    assert not verify_pairing_signature(desktop, phone_point, flipped_hash, signature)
    flipped_sig = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify_pairing_signature(desktop, phone_point, handshake_hash, flipped_sig)
    assert not verify_pairing_signature(desktop, phone_point, handshake_hash, signature[:31])
    assert not verify_pairing_signature(desktop, b"\x04" + bytes(64), handshake_hash, signature)


def _valid_map(desktop: ec.EllipticCurvePrivateKey, handshake_hash: bytes) -> dict[int, Any]:
    phone = ec.generate_private_key(ec.SECP256R1())
    pub = point_bytes(phone.public_key())
    return {
        1: handshake_hash,
        2: handshake_hash,
        3: handshake_hash,
        4: pub,
        5: "test",
        6: compute_pairing_signature(phone, point_bytes(desktop.public_key()), handshake_hash),
    }


def test_parse_valid_linking_information() -> None:
    desktop = ec.generate_private_key(ec.SECP256R1())
    handshake_hash = bytes.fromhex("05060708") + bytes(28)
    info = LinkingInfo.from_map(cbor2.loads(cbor2.dumps(_valid_map(desktop, handshake_hash))))
    info.verify(desktop, handshake_hash)
    assert info.authenticator_name == "test"
    assert LinkingInfo.from_map(info.to_map()) == info
    assert info.link_secret.hex() not in repr(info)


def test_parse_invalid_linking_information() -> None:
    desktop = ec.generate_private_key(ec.SECP256R1())
    handshake_hash = bytes.fromhex("05060708") + bytes(28)
    hh32 = bytes(32)
    invalid: list[Any] = [
        "not a map",
        {1: hh32},
        {k: hh32 for k in range(1, 7)},
        {**_valid_map(desktop, handshake_hash), 4: bytes.fromhex("090a0b0c") + bytes(61)},
        {**_valid_map(desktop, handshake_hash), 5: b"bytes"},
        {**_valid_map(desktop, handshake_hash), 999: "yes"},
    ]
    for contents in invalid:
        with pytest.raises(ProtocolError):
            LinkingInfo.from_map(contents)
    wrong_signature = {**_valid_map(desktop, handshake_hash), 6: os.urandom(32)}
    with pytest.raises(ProtocolError):
        LinkingInfo.from_map(wrong_signature).verify(desktop, handshake_hash)
    with pytest.raises(ProtocolError):
        LinkingInfo.from_map(_valid_map(desktop, handshake_hash)).verify(desktop, hh32)
