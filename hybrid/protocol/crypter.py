"""The AES-256-GCM record layer used after the handshake."""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hybrid.errors import ProtocolError, ProtocolReason
from hybrid.protocol.cbor import require_bytes

#: Chromium refuses sequence numbers above this.
MAX_SEQUENCE = (1 << 24) - 1
_PADDING_GRANULARITY = 32
_TAG_SIZE = 16
_OLD_ADDITIONAL_DATA = b"\x02"


def pad(message: bytes) -> bytes:
    """Append zeros and a count byte so the length is a multiple of 32."""
    padded_length = (len(message) + 1 + _PADDING_GRANULARITY - 1) & ~(_PADDING_GRANULARITY - 1)
    zeros = padded_length - len(message) - 1
    return message + bytes(zeros) + bytes([zeros])


def unpad(padded: bytes) -> bytes:
    """Strip the padding `pad` added; ProtocolError if it cannot be valid."""
    if not padded:
        raise ProtocolError("empty record plaintext")
    zeros = padded[-1]
    if zeros + 1 > len(padded):
        raise ProtocolError("record padding is longer than the record")
    return padded[: len(padded) - zeros - 1]


def _new_nonce(counter: int) -> bytes:
    return bytes(8) + counter.to_bytes(4, "big")


def _old_nonce(counter: int) -> bytes:
    return counter.to_bytes(4, "little") + bytes(8)


class Crypter:
    """Encrypts and decrypts tunnel records with per-direction counters.

    Uses the current construction (nonce = 8 zero bytes ‖ BE32 counter, no additional data).
    If the very first record received only opens under the old construction (LE32 counter
    first, additional data 0x02, older Android Chrome), both directions switch to it.
    """

    def __init__(self, read_key: bytes, write_key: bytes) -> None:
        read_key = require_bytes(read_key, "read key")
        write_key = require_bytes(write_key, "write key")
        if len(read_key) != 32 or len(write_key) != 32:
            raise ProtocolError("Crypter keys must be 32 bytes each")
        self._read = AESGCM(read_key)
        self._write = AESGCM(write_key)
        self._read_counter = 0
        self._write_counter = 0
        self._old_construction = False

    def __repr__(self) -> str:
        return f"Crypter(read={self._read_counter}, write={self._write_counter})"

    @property
    def uses_old_construction(self) -> bool:
        """True once the peer was found to speak the old nonce construction."""
        return self._old_construction

    def _seal(self, counter: int, plaintext: bytes, *, old: bool) -> bytes:
        if old:
            return self._write.encrypt(_old_nonce(counter), plaintext, _OLD_ADDITIONAL_DATA)
        return self._write.encrypt(_new_nonce(counter), plaintext, None)

    def _open(self, counter: int, ciphertext: bytes, *, old: bool) -> bytes:
        if old:
            return self._read.decrypt(_old_nonce(counter), ciphertext, _OLD_ADDITIONAL_DATA)
        return self._read.decrypt(_new_nonce(counter), ciphertext, None)

    def encrypt(self, plaintext: bytes) -> bytes:
        """Pad and seal one record."""
        plaintext = require_bytes(plaintext, "record plaintext")
        counter = self._write_counter
        if counter > MAX_SEQUENCE:
            raise ProtocolError("too many records on this tunnel: start a new session")
        self._write_counter += 1
        return self._seal(counter, pad(plaintext), old=self._old_construction)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Open one record and strip its padding; ProtocolError on any failure."""
        ciphertext = require_bytes(ciphertext, "record")
        counter = self._read_counter
        if counter > MAX_SEQUENCE:
            raise ProtocolError("too many records on this tunnel: start a new session")
        if len(ciphertext) < _TAG_SIZE:
            raise ProtocolError("record is shorter than its authentication tag")
        try:
            padded = self._open(counter, ciphertext, old=self._old_construction)
        except InvalidTag:
            if counter != 0 or self._old_construction:
                raise ProtocolError(
                    "record failed authentication", reason=ProtocolReason.AUTHENTICATION_FAILED
                ) from None
            try:
                padded = self._open(counter, ciphertext, old=True)
            except InvalidTag:
                raise ProtocolError(
                    "record failed authentication", reason=ProtocolReason.AUTHENTICATION_FAILED
                ) from None
            self._old_construction = True
        self._read_counter += 1
        return unpad(padded)
