"""Strict CBOR decoding: one whole item, every failure a ProtocolError."""

from __future__ import annotations

import io
from typing import Any

import cbor2

from hybrid.errors import ProtocolError


def cbor_decode(data: bytes, what: str) -> Any:
    """Decode exactly one CBOR item filling all of `data`; `what` names it in errors."""
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises many types (ValueError, EOFError, ...)
        raise ProtocolError(f"{what} is not valid CBOR") from exc
    if stream.tell() != len(data):
        raise ProtocolError(f"{what} has trailing bytes after its CBOR item")
    return value


def cbor_decode_map(data: bytes, what: str) -> dict[Any, Any]:
    """Decode a CBOR map filling all of `data`."""
    value = cbor_decode(data, what)
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not a CBOR map")
    return value


def cbor_encode(value: Any) -> bytes:
    """Encode canonically (CTAP2 canonical form: sorted keys, shortest lengths)."""
    return cbor2.dumps(value, canonical=True)


def require_bytes(value: object, what: str) -> bytes:
    """Accept bytes-like input, reject everything else with a ProtocolError."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise ProtocolError(f"{what} must be bytes, not {type(value).__name__}")


def require_int(value: object, what: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer (not a bool) in range, else ProtocolError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{what} must be an integer")
    if value < minimum or (maximum is not None and value > maximum):
        raise ProtocolError(f"{what} is out of range")
    return value
