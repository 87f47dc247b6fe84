"""One tunnel's state and the rules for how it ends; no I/O here.

A tunnel pairs the phone's connection (`/new`) with the desktop's (`/connect`). It only ever
holds ciphertext that it forwards unread.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode
from websockets.protocol import Protocol


class Role(enum.Enum):
    PHONE = "phone"
    DESKTOP = "desktop"


@dataclass(frozen=True, slots=True)
class Ending:
    """How a tunnel ends: the close frame both sides get, and the reason label for metrics."""

    code: int
    reason: str
    label: str


class Flow:
    """One direction of a tunnel: where messages go and how many have gone."""

    __slots__ = ("bytes", "messages", "target")

    def __init__(self, target: ServerConnection | None) -> None:
        self.target = target
        self.messages = 0
        self.bytes = 0


class Tunnel:
    """A live tunnel; it stays registered until both of its connections are gone."""

    __slots__ = (
        "desktop",
        "desktop_gone",
        "down",
        "drained",
        "ending",
        "held",
        "owner",
        "phone",
        "phone_gone",
        "started",
        "timer",
        "tunnel_id",
        "up",
    )

    def __init__(self, tunnel_id: bytes, phone: ServerConnection, started: float) -> None:
        self.tunnel_id = tunnel_id
        self.phone = phone
        self.desktop: ServerConnection | None = None
        self.started = started
        #: phone → desktop; its target stays None until held messages reach the desktop.
        self.up = Flow(None)
        #: desktop → phone.
        self.down = Flow(phone)
        #: Phone messages that arrived before the desktop; created only when needed.
        self.held: deque[bytes] | None = None
        #: Set when `held` has room again (or the tunnel ends); created only when needed.
        self.drained: asyncio.Event | None = None
        self.ending: Ending | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.phone_gone = False
        self.desktop_gone = False
        #: The address key (hub.per_ip's) of the phone that opened it, for per-address limits.
        self.owner = ""

    @property
    def finished(self) -> bool:
        """Both sides (or the phone, when no desktop ever joined) are gone."""
        return self.phone_gone and (self.desktop is None or self.desktop_gone)


#: Close codes that may be sent on the wire (RFC 6455 §7.4; 1005/1006/1015 may not).
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def ending_after_close(protocol: Protocol, role: Role) -> Ending:
    """How the tunnel ends after `role`'s connection closed on its own.

    The other side gets the same code when the client chose it, the code websockets used when
    it had to fail the connection (1009 too big, 1007 bad UTF-8, 1002 protocol error), and
    1001 when the client simply vanished.
    """
    who = role.value
    rcvd, sent = protocol.close_rcvd, protocol.close_sent
    if rcvd is not None and (sent is None or protocol.close_rcvd_then_sent):
        code = rcvd.code
        if code not in _SENDABLE and not 3000 <= code < 5000:  # e.g. 1005: no status
            code = CloseCode.NORMAL_CLOSURE
        label = "normal" if code in (1000, 1001) else "peer_error"
        return Ending(code, f"the {who} closed the tunnel", label)
    if sent is not None:
        if sent.code == CloseCode.MESSAGE_TOO_BIG:
            return Ending(
                sent.code, f"the {who} sent a message over the size limit", "message_too_big"
            )
        if sent.code == CloseCode.INTERNAL_ERROR:
            return Ending(CloseCode.GOING_AWAY, f"the {who} stopped answering", "ping_timeout")
        if sent.code in _SENDABLE:
            return Ending(sent.code, f"the {who} broke the WebSocket protocol", "protocol_error")
    return Ending(CloseCode.GOING_AWAY, f"the {who} disconnected", "disconnected")
