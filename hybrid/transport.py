"""What drives a sans-I/O conversation over a tunnel, for both roles.

`ConversationTransport` moves a conversation's bytes through a `Tunnel`; `peer_failures` and
`time_limit` turn tunnel closes, protocol violations and timeouts into the project's errors,
with the data (close code, reason, what timed out) kept on them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from hybrid.errors import (
    CeremonyTimeout,
    HybridError,
    PeerError,
    PeerReason,
    PhoneLacksFeature,
    ProtocolError,
)
from hybrid.protocol.conversation import Event
from hybrid.tunnel import Tunnel, TunnelClosed

E = TypeVar("E", bound=Event)
OnEvent = Callable[[Event], Awaitable[None]]


class SansIOConversation(Protocol):
    """What `hybrid.protocol`'s desktop and phone conversations offer a driver."""

    revision: int

    def receive(self, message: bytes) -> list[Event]: ...

    def data_to_send(self) -> list[bytes]: ...


class ConversationTransport:
    """A conversation's bytes over a tunnel: send what it queued, feed it what arrives."""

    def __init__(self, tunnel: Tunnel, conversation: SansIOConversation) -> None:
        self.tunnel = tunnel
        self.conversation = conversation
        self._events: collections.deque[Event] = collections.deque()

    async def flush(self) -> None:
        """Send every message the conversation has queued."""
        for message in self.conversation.data_to_send():
            await self.tunnel.send(message)

    async def next_event(self) -> Event:
        """The next event, reading (and answering) tunnel messages until there is one."""
        await self.flush()
        while not self._events:
            self._events.extend(self.conversation.receive(await self.tunnel.recv()))
            await self.flush()
        return self._events.popleft()

    async def handle_pending(self, on_event: OnEvent) -> None:
        """Pass events already decoded (none are read) to `on_event`."""
        while self._events:
            await on_event(self._events.popleft())

    async def wait_for(self, wanted: type[E], on_other: OnEvent | None = None) -> E:
        """Events until one of type `wanted`; the others go to `on_other` (or are dropped)."""
        while True:
            event = await self.next_event()
            if isinstance(event, wanted):
                return event
            if on_other is not None:
                await on_other(event)


@dataclass(frozen=True)
class Peer:
    """The other side, as the user knows it, and what to do when it hangs up early."""

    name: str  # "phone" or "computer"
    closed_advice: str


#: WebSocket close code for a message over the limit (a tunnel server's --max-message-size).
MESSAGE_TOO_BIG = 1009
_TOO_BIG_ADVICE = (
    "A message of this ceremony was too large for the tunnel server (WebSocket close 1009), "
    "so it closed the connection: if the site asked for much (a large largeBlob to write, a "
    "long allowCredentials list), use a security key, or ask the site to send less."
)

PHONE = Peer(
    "phone",
    "The phone closed the connection before answering: unlock the phone, keep it near this "
    "computer and try again.",
)
COMPUTER = Peer(
    "computer",
    "The computer closed the connection before the sign-in finished: scan a new QR code and "
    "try again.",
)


@contextlib.asynccontextmanager
async def peer_failures(tunnel: Tunnel, peer: Peer) -> AsyncIterator[None]:
    """Translate failures inside the block; drop the tunnel at once on a protocol error.

    A graceful close needs the peer's close frame, which cannot be read while a flooding
    peer fills the queue, so the tunnel is aborted rather than closed after a violation.
    """
    try:
        yield
    except TunnelClosed as exc:
        advice = _TOO_BIG_ADVICE if exc.code == MESSAGE_TOO_BIG else peer.closed_advice
        raise PeerError(advice, reason=PeerReason.CLOSED, close_code=exc.code) from exc
    except ProtocolError as exc:
        tunnel.abort()
        raise exc.from_peer(peer.name) from exc
    except PhoneLacksFeature:
        raise  # our own refusal before any request: the tunnel is fine and closes gracefully
    except HybridError:
        tunnel.abort()
        raise


@contextlib.asynccontextmanager
async def time_limit(seconds: float, waiting_for: str, advice: str) -> AsyncIterator[None]:
    """`asyncio.timeout` whose expiry is a `CeremonyTimeout` saying what did not come."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        if isinstance(exc, HybridError):
            raise
        raise CeremonyTimeout(
            f"No answer from the {waiting_for} within {seconds:g} s: {advice}",
            waiting_for=waiting_for,
            seconds=seconds,
        ) from None
