"""Base-10 "digit" encoding of QR payloads: 7-byte chunks become 17 decimal digits.

Digits keep the QR code in numeric mode, the densest one. Little-endian chunks, zero-padded.
"""

from __future__ import annotations

from hybrid.errors import ProtocolError
from hybrid.protocol.cbor import require_bytes

_CHUNK_BYTES = 7
_CHUNK_DIGITS = 17
# Digits used by a trailing partial chunk of 1..6 bytes.
_PARTIAL_DIGITS = {1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15}
_PARTIAL_BYTES = {digits: nbytes for nbytes, digits in _PARTIAL_DIGITS.items()}
_ASCII_DIGITS = frozenset("0123456789")


def digits_encode(data: bytes) -> str:
    """Encode bytes as decimal digits (Chromium's `BytesToDigits`)."""
    data = require_bytes(data, "digits_encode input")
    parts: list[str] = []
    for start in range(0, len(data), _CHUNK_BYTES):
        chunk = data[start : start + _CHUNK_BYTES]
        width = _CHUNK_DIGITS if len(chunk) == _CHUNK_BYTES else _PARTIAL_DIGITS[len(chunk)]
        parts.append(str(int.from_bytes(chunk, "little")).zfill(width))
    return "".join(parts)


def _group_to_bytes(group: str, nbytes: int) -> bytes:
    value = int(group)
    if value >> (8 * nbytes):
        raise ProtocolError("QR code digits are out of range: the code is damaged, scan it again")
    return value.to_bytes(nbytes, "little")


def digits_decode(text: str) -> bytes:
    """Decode decimal digits back to bytes; ProtocolError on any malformed input."""
    if not isinstance(text, str):
        raise ProtocolError("digits_decode needs a string")
    if not _ASCII_DIGITS.issuperset(text):
        raise ProtocolError("QR code payload contains characters other than the digits 0-9")
    full_groups, remainder = divmod(len(text), _CHUNK_DIGITS)
    if remainder and remainder not in _PARTIAL_BYTES:
        raise ProtocolError("QR code payload has an impossible number of digits")
    out = bytearray()
    for index in range(full_groups):
        group = text[index * _CHUNK_DIGITS : (index + 1) * _CHUNK_DIGITS]
        out += _group_to_bytes(group, _CHUNK_BYTES)
    if remainder:
        out += _group_to_bytes(text[full_groups * _CHUNK_DIGITS :], _PARTIAL_BYTES[remainder])
    return bytes(out)
