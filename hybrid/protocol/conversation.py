"""What both sides of a hybrid conversation share: events, states and the record layer.

A conversation is sans-I/O (as websockets' `Protocol`): feed it each tunnel message with
`receive()`, act on the events it returns, and send whatever `data_to_send()` hands back.
It never waits, sleeps or touches a socket, so every step can be tested byte by byte.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from hybrid.errors import ProtocolError, ProtocolReason
from hybrid.protocol.crypter import Crypter
from hybrid.protocol.linking import LinkingInfo
from hybrid.protocol.messages import MessageType, decode_message, encode_message

#: Update messages a peer may send in one conversation; a peer that keeps sending them would
#: otherwise hold the other side until its timeout.
MAX_UPDATES: Final = 16


class State(enum.Enum):
    """Where a conversation stands."""

    HANDSHAKE = "handshake"  # waiting for the other side's Noise message
    POST_HANDSHAKE = "post_handshake"  # desktop: waiting for the phone's getInfo record
    READY = "ready"  # encrypted; no CTAP command exchanged yet
    AWAITING_REPLY = "awaiting_reply"  # desktop: request sent
    ANSWERING = "answering"  # phone: request received, reply not yet sent
    ANSWERED = "answered"  # phone: reply sent; only the desktop's shutdown is still expected
    DONE = "done"  # desktop: reply received
    CLOSED = "closed"  # shutdown sent or received: nothing more is exchanged


@dataclass(frozen=True)
class Connected:
    """The Noise handshake (and, on the desktop, the post-handshake message) is done.

    `get_info` is the phone's authenticatorGetInfo CBOR (desktop side; empty on the phone).
    """

    revision: int
    get_info: bytes = b""


@dataclass(frozen=True)
class LinkingReceived:
    """Desktop: the phone sent linking info whose signature over the handshake verified."""

    linking: LinkingInfo


@dataclass(frozen=True)
class CtapRequest:
    """Phone: the desktop's one CTAP command, `command byte ‖ CBOR`."""

    payload: bytes


@dataclass(frozen=True)
class CtapReply:
    """Desktop: the phone's answer, `status byte ‖ CBOR`."""

    payload: bytes


@dataclass(frozen=True)
class PeerShutdown:
    """The other side said goodbye (revision 1 only)."""


Event = Connected | LinkingReceived | CtapRequest | CtapReply | PeerShutdown


class Conversation:
    """The record layer over one tunnel, once the handshake has given a `Crypter`.

    Revision 0 (protocol v2.0) has no type byte: every record after the post-handshake message
    is a CTAP message and there is no update or shutdown message.
    """

    def __init__(self) -> None:
        self.state = State.HANDSHAKE
        self.revision = 1
        self._crypter: Crypter | None = None
        self._outgoing: list[bytes] = []
        self._updates = 0

    def data_to_send(self) -> list[bytes]:
        """Tunnel messages to send now, in order (each call hands them over once)."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def _require(self, *states: State, doing: str) -> None:
        if self.state not in states:
            raise ProtocolError(
                f"cannot {doing} in state {self.state.value}",
                reason=ProtocolReason.UNEXPECTED_MESSAGE,
            )

    def _records(self) -> Crypter:
        assert self._crypter is not None, "records before the handshake"
        return self._crypter

    def _send_record(self, plaintext: bytes) -> None:
        self._outgoing.append(self._records().encrypt(plaintext))

    def _send_frame(self, message_type: MessageType, payload: bytes = b"") -> None:
        if self.revision == 0:
            if message_type is MessageType.CTAP:
                self._send_record(payload)
            return  # v2.0 has no shutdown or update messages
        self._send_record(encode_message(message_type, payload))

    def _open_frame(self, message: bytes) -> tuple[MessageType, bytes]:
        plaintext = self._records().decrypt(message)
        if self.revision == 0:
            message_type, payload = MessageType.CTAP, plaintext
        else:
            message_type, payload = decode_message(plaintext)
        if message_type is MessageType.CTAP and not payload:
            raise ProtocolError("empty CTAP message", reason=ProtocolReason.EMPTY_CTAP_MESSAGE)
        if message_type is MessageType.UPDATE:
            self._updates += 1
            if self._updates > MAX_UPDATES:
                raise ProtocolError(
                    f"more than {MAX_UPDATES} update messages",
                    reason=ProtocolReason.TOO_MANY_UPDATES,
                )
        return message_type, payload

    @staticmethod
    def _unexpected(message_type: MessageType, state: State) -> ProtocolError:
        return ProtocolError(
            f"unexpected {message_type.name} message in state {state.value}",
            reason=ProtocolReason.UNEXPECTED_MESSAGE,
        )
