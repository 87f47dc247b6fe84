"""The 16-byte EID a phone advertises over BLE, and its 20-byte encrypted advert."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hybrid.errors import ProtocolError
from hybrid.protocol.cbor import require_bytes, require_int
from hybrid.protocol.constants import (
    ADVERT_SIZE,
    EID_KEY_SIZE,
    EID_NONCE_SIZE,
    EID_SIZE,
    ROUTING_ID_SIZE,
)
from hybrid.protocol.domains import is_known_domain_id

_TAG_SIZE = ADVERT_SIZE - EID_SIZE


@dataclass(frozen=True)
class Eid:
    """Decrypted advert: reserved zero byte, nonce, routing ID and tunnel-server domain ID."""

    nonce: bytes
    routing_id: bytes
    domain_id: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "nonce", require_bytes(self.nonce, "EID nonce"))
        object.__setattr__(self, "routing_id", require_bytes(self.routing_id, "routing ID"))
        if len(self.nonce) != EID_NONCE_SIZE:
            raise ProtocolError(f"EID nonce must be {EID_NONCE_SIZE} bytes")
        if len(self.routing_id) != ROUTING_ID_SIZE:
            raise ProtocolError(f"routing ID must be {ROUTING_ID_SIZE} bytes")
        require_int(self.domain_id, "domain ID", maximum=0xFFFF)

    def to_bytes(self) -> bytes:
        """`00 ‖ nonce(10) ‖ routing_id(3) ‖ LE16(domain_id)`."""
        return b"\x00" + self.nonce + self.routing_id + self.domain_id.to_bytes(2, "little")

    @classmethod
    def from_bytes(cls, data: bytes) -> Eid:
        """Parse a decrypted EID; the reserved byte must be zero and the domain ID known."""
        data = require_bytes(data, "EID")
        if len(data) != EID_SIZE:
            raise ProtocolError(f"EID must be {EID_SIZE} bytes")
        if data[0] != 0:
            raise ProtocolError("EID reserved byte is not zero")
        domain_id = int.from_bytes(data[14:16], "little")
        if not is_known_domain_id(domain_id):
            raise ProtocolError(f"EID names unassigned tunnel server domain {domain_id}")
        return cls(nonce=data[1:11], routing_id=data[11:14], domain_id=domain_id)


def _check_key(eid_key: bytes) -> bytes:
    eid_key = require_bytes(eid_key, "EID key")
    if len(eid_key) != EID_KEY_SIZE:
        raise ProtocolError(f"EID key must be {EID_KEY_SIZE} bytes")
    return eid_key


def _aes_block(key: bytes, block: bytes, *, encrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(block) + ctx.finalize()


def _tag(mac_key: bytes, ciphertext: bytes) -> bytes:
    return hmac.new(mac_key, ciphertext, hashlib.sha256).digest()[:_TAG_SIZE]


def encrypt_eid_bytes(eid_key: bytes, plaintext: bytes) -> bytes:
    """Encrypt any 16-byte EID plaintext (linked sessions use random ones)."""
    eid_key = _check_key(eid_key)
    plaintext = require_bytes(plaintext, "EID")
    if len(plaintext) != EID_SIZE:
        raise ProtocolError(f"EID must be {EID_SIZE} bytes")
    ciphertext = _aes_block(eid_key[:32], plaintext, encrypt=True)
    return ciphertext + _tag(eid_key[32:], ciphertext)


def decrypt_eid_bytes(eid_key: bytes, service_data: bytes) -> bytes | None:
    """Trial-decrypt the first 20 bytes of service data; None if it is not ours or invalid."""
    eid_key = _check_key(eid_key)
    service_data = require_bytes(service_data, "service data")
    if len(service_data) < ADVERT_SIZE:
        return None
    ciphertext, tag = service_data[:EID_SIZE], service_data[EID_SIZE:ADVERT_SIZE]
    if not hmac.compare_digest(_tag(eid_key[32:], ciphertext), tag):
        return None
    plaintext = _aes_block(eid_key[:32], ciphertext, encrypt=False)
    if plaintext[0] != 0 or not is_known_domain_id(int.from_bytes(plaintext[14:], "little")):
        return None
    return plaintext


def encrypt_advert(eid_key: bytes, eid: Eid) -> bytes:
    """AES-256(eid_key[:32], EID) ‖ HMAC-SHA256(eid_key[32:], that)[:4]: 20 bytes."""
    if not isinstance(eid, Eid):
        raise ProtocolError("encrypt_advert needs an Eid")
    return encrypt_eid_bytes(eid_key, eid.to_bytes())


def decrypt_advert(eid_key: bytes, service_data: bytes) -> Eid | None:
    """The Eid in an advert, or None when it is too short, not ours or invalid.

    Accepts service data of 20 bytes or more (CTAP 2.3 appends a suffix) and decrypts the
    first 20. The tag is compared in constant time.
    """
    plaintext = decrypt_eid_bytes(eid_key, service_data)
    return None if plaintext is None else Eid.from_bytes(plaintext)
