"""The relay loop: one per connection, forwarding each message as received, unread.

It costs about what the smallest relay costs: one `recv` and one `send` per message, no task or
copy per message. Bookkeeping is a few integer additions on the tunnel.
"""

from __future__ import annotations

import asyncio
from collections import deque

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.protocol import State

from .connection import CableConnection
from .hub import Hub
from .tunnel import Ending, Flow, Tunnel


class Relay:
    """The websockets connection handler of a tunnel server."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._max_messages = hub.config.max_messages
        self._max_buffered = hub.config.max_buffered

    async def __call__(self, conn: CableConnection) -> None:
        # websockets keeps the handshake request (also in its parser's frame) and response for
        # the connection's whole life; their headers, never read again, are ~3.5 KiB a tunnel.
        for message in (conn.request, conn.response):
            if message is not None:
                message.headers.clear()
        tunnel = conn.tunnel
        if tunnel is None:  # the upgrade went through without a tunnel side: cannot happen
            await conn.close(CloseCode.INTERNAL_ERROR, "no tunnel")
            return
        try:
            if conn is tunnel.phone:
                await self._pump(conn, tunnel, tunnel.up)
            else:
                await self._release_held(conn, tunnel)
                await self._pump(conn, tunnel, tunnel.down)
        except ConnectionClosed:
            pass  # this side or the peer is gone; `Hub.release` has ended the tunnel
        finally:
            ending = tunnel.ending
            if ending is not None and conn.state is not State.CLOSED:
                # Close with the tunnel's code before websockets' default 1000 does.
                await conn.close(ending.code, ending.reason)

    async def _pump(self, conn: CableConnection, tunnel: Tunnel, flow: Flow) -> None:
        recv = conn.recv
        limit = self._max_messages
        while True:
            message = await recv()
            if tunnel.ending is not None:
                return  # ended while this side waited: drop the message and stop reading
            if type(message) is not bytes:
                self._hub.end(
                    tunnel,
                    Ending(
                        CloseCode.UNSUPPORTED_DATA,
                        "text frames are not relayed; send binary",
                        "text_frame",
                    ),
                    initiator=conn,
                )
                return
            count = flow.messages + 1
            if count > limit:
                self._hub.end(
                    tunnel,
                    Ending(
                        CloseCode.POLICY_VIOLATION,
                        f"more than {limit} messages; start again",
                        "message_limit",
                    ),
                    initiator=conn,
                )
                return
            flow.messages = count
            flow.bytes += len(message)
            target = flow.target
            if target is not None:
                await target.send(message)
            else:
                await self._hold(tunnel, message)

    async def _hold(self, tunnel: Tunnel, message: bytes) -> None:
        """Keep a phone message until the desktop joins; stop reading the phone when full."""
        held = tunnel.held
        if held is None:
            held = tunnel.held = deque()
        held.append(message)
        if len(held) >= self._max_buffered and tunnel.ending is None:
            drained = tunnel.drained
            if drained is None:
                drained = tunnel.drained = asyncio.Event()
            drained.clear()
            await drained.wait()

    async def _release_held(self, conn: CableConnection, tunnel: Tunnel) -> None:
        """Deliver held phone messages in order, then let the phone's loop send directly."""
        held = tunnel.held
        while held:
            await conn.send(held.popleft())
        tunnel.held = None
        tunnel.up.target = conn
        if tunnel.drained is not None:
            tunnel.drained.set()
