"""Messages inside the encrypted tunnel: the post-handshake message and typed frames."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from hybrid.errors import ProtocolError
from hybrid.protocol.cbor import cbor_decode, cbor_decode_map, cbor_encode, require_bytes
from hybrid.protocol.linking import LinkingInfo

POST_HANDSHAKE_PADDING = 512
#: Chromium pads the phone's update message so that its record is always 512 + 16 bytes.
_UPDATE_PADDING_TARGET = 512
_KEY_GET_INFO = 1
_KEY_LINKING = 2
_KEY_FEATURES = 3


class MessageType(enum.IntEnum):
    """The type byte in front of every message after the post-handshake one (revision >= 1)."""

    SHUTDOWN = 0
    CTAP = 1
    UPDATE = 2
    JSON = 3


def encode_message(message_type: MessageType, payload: bytes = b"") -> bytes:
    """`type ‖ payload`."""
    return bytes([MessageType(message_type)]) + require_bytes(payload, "payload")


def decode_message(plaintext: bytes) -> tuple[MessageType, bytes]:
    """Split a decrypted frame into its type and payload; unknown types are errors."""
    plaintext = require_bytes(plaintext, "message")
    if not plaintext:
        raise ProtocolError("empty message in the tunnel")
    try:
        message_type = MessageType(plaintext[0])
    except ValueError:
        raise ProtocolError(f"unknown tunnel message type {plaintext[0]}") from None
    return message_type, plaintext[1:]


def encode_padded_map(contents: dict[Any, Any], granularity: int = POST_HANDSHAKE_PADDING) -> bytes:
    """CBOR ‖ zeros ‖ LE16(number of zeros), total a multiple of `granularity` (revision 0)."""
    body = cbor_encode(contents)
    padded = (len(body) + 2 + granularity - 1) // granularity * granularity
    zeros = padded - len(body) - 2
    return body + bytes(zeros) + zeros.to_bytes(2, "little")


def _decode_padded(data: bytes, count_size: int) -> dict[Any, Any] | None:
    """The map before `zeros ‖ LE(count)`, or None if the padding or CBOR does not fit."""
    if len(data) < count_size:
        return None
    zeros = int.from_bytes(data[len(data) - count_size :], "little")
    if zeros + count_size > len(data):
        return None
    try:
        return cbor_decode_map(data[: len(data) - zeros - count_size], "post-handshake message")
    except ProtocolError:
        return None


def decode_padded_map(data: bytes) -> dict[Any, Any]:
    """Decode a padded map: the 16-bit form first, then the pre-M99 8-bit form."""
    data = require_bytes(data, "padded map")
    contents = _decode_padded(data, 2)
    if contents is None:
        contents = _decode_padded(data, 1)  # pre-M99 Chromium
    if contents is None:
        raise ProtocolError("post-handshake message is neither CBOR nor a padded CBOR map")
    return contents


@dataclass(frozen=True)
class PostHandshakeMessage:
    """The first record the phone sends: its getInfo, features and (old phones) linking info.

    `revision` 1 is a plain CBOR map with typed frames afterwards; revision 0 is a padded map
    and untyped CTAP frames.
    """

    get_info: bytes | None
    features: tuple[str, ...] = ("ctap",)
    linking: LinkingInfo | None = None
    revision: int = 1

    @property
    def supports_ctap(self) -> bool:
        return "ctap" in self.features

    def encode(self) -> bytes:
        contents: dict[int, Any] = {}
        if self.get_info is not None:
            contents[_KEY_GET_INFO] = self.get_info
        if self.linking is not None:
            contents[_KEY_LINKING] = self.linking.to_map()
        if self.revision == 0:
            return encode_padded_map(contents)
        contents[_KEY_FEATURES] = sorted(self.features)
        return cbor_encode(contents)

    @classmethod
    def decode(cls, plaintext: bytes) -> PostHandshakeMessage:
        """Revision 1 if the whole record is one CBOR item, else a revision-0 padded map."""
        plaintext = require_bytes(plaintext, "post-handshake message")
        try:
            value = cbor_decode(plaintext, "post-handshake message")
            revision = 1
        except ProtocolError:
            value = decode_padded_map(plaintext)
            revision = 0
        if not isinstance(value, dict):
            raise ProtocolError("post-handshake message is not a CBOR map")
        features = value.get(_KEY_FEATURES, ["ctap"])
        if not isinstance(features, list):
            raise ProtocolError("post-handshake features (key 3) must be an array")
        features = [f for f in features if isinstance(f, str)]  # others skipped, as Chromium
        get_info = value.get(_KEY_GET_INFO)
        if "ctap" in features:
            if not isinstance(get_info, bytes):
                raise ProtocolError("post-handshake message lacks the phone's getInfo (key 1)")
        elif get_info is not None:
            raise ProtocolError("post-handshake message has getInfo but no CTAP feature")
        linking = None
        if _KEY_LINKING in value:
            linking = LinkingInfo.from_map(value[_KEY_LINKING])
        return cls(get_info=get_info, features=tuple(features), linking=linking, revision=revision)


def encode_update(linking: LinkingInfo | None) -> bytes:
    """The phone's update frame `0x02 ‖ CBOR{0: padding, 1?: linking}`, padded like Chromium's.

    The padding keeps the record the same size whether or not linking info is present.
    """
    padding = _UPDATE_PADDING_TARGET - 16 - 1 - 3
    contents: dict[int, Any] = {}
    if linking is not None:
        contents[1] = linking.to_map()
        padding = max(0, padding - len(cbor_encode(contents)))
    contents[0] = bytes(padding)
    return encode_message(MessageType.UPDATE, cbor_encode(contents))


def decode_update(payload: bytes) -> LinkingInfo | None:
    """Linking info in an update payload (key 1), or None when the phone sent none."""
    contents = cbor_decode_map(require_bytes(payload, "update"), "update message")
    if 1 not in contents:
        return None
    return LinkingInfo.from_map(contents[1])
