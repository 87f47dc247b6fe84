"""Strict CBOR decoding: one whole item, every failure a ProtocolError."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any, Final, NoReturn

import cbor2

from hybrid.errors import ProtocolError

#: Deep enough for any CTAP2 or caBLE structure, shallow enough to stop recursion bombs.
MAX_CBOR_DEPTH: Final = 16


def _refuse_tag(*_: object) -> NoReturn:
    raise ValueError("CBOR tags are not allowed here")


class _RejectEveryTag(Mapping[int, Any]):
    """A `semantic_decoders` table refusing every tag, so cbor2 builds no datetimes etc."""

    def __getitem__(self, tag: int) -> Any:
        return _refuse_tag

    def __contains__(self, tag: object) -> bool:
        return True

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


_NO_TAGS: Final = _RejectEveryTag()


def cbor_decode(data: bytes, what: str) -> Any:
    """Decode exactly one CBOR item filling all of `data`; `what` names it in errors.

    Strict like Chromium's reader: no tags, no indefinite lengths, no duplicate map keys.
    """
    stream = io.BytesIO(data)
    decoder = cbor2.CBORDecoder(
        stream,
        semantic_decoders=_NO_TAGS,
        tag_hook=_refuse_tag,
        max_depth=MAX_CBOR_DEPTH,
        allow_indefinite=False,
        allow_duplicate_keys=False,
    )
    try:
        value = decoder.decode()
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
