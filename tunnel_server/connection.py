"""`CableConnection`: a websockets server connection that is admitted at TCP accept.

The listening socket is served without asyncio's TLS, so `connection_made` runs as soon as the
kernel hands over a connection: limits apply before any byte is read. Then, in order, the
connection reads a PROXY v2 header (with `--proxy-protocol`), does its TLS handshake (with
`--tls-cert`), and only then becomes a WebSocket connection. One deadline,
`--handshake-timeout`, covers the header and TLS; websockets' own covers the HTTP upgrade.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any, ClassVar, cast

from websockets.asyncio.server import Server, ServerConnection
from websockets.server import ServerProtocol

from .proxy_protocol import ProxyHeaderError, parse_header

if TYPE_CHECKING:
    from .hub import Hub
    from .paths import ConnectTunnel, NewTunnel
    from .tunnel import Tunnel


class CableConnection(ServerConnection):
    """A server connection that tells the hub when its TCP connection comes and goes.

    The hub and TLS context are class attributes because websockets builds connections
    itself; each server makes its own subclass (`connection_class`).
    """

    hub: ClassVar[Hub]
    tls: ClassVar[ssl.SSLContext | None]

    def __init__(self, protocol: ServerProtocol, server: Server, **kwargs: Any) -> None:
        super().__init__(protocol, server, **kwargs)
        self.route: NewTunnel | ConnectTunnel | None = None
        self.tunnel: Tunnel | None = None
        #: The client's address for logs and /metrics (from the PROXY header if there is one).
        self.client_ip: str | None = None
        #: What per-address limits count this connection under, once counted.
        self.ip_key: str | None = None
        #: Set when the hub refused the connection itself (so it is not also "incomplete").
        self.refused = False
        self._header: bytearray | None = None
        self._early: list[bytes] = []
        self._upgraded = False
        self._deadline: asyncio.TimerHandle | None = None

    # -- asyncio protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._upgraded:  # cannot happen: the TLS transport is handed over in _start_tls
            return
        self.transport = cast(asyncio.Transport, transport)
        hub = self.hub
        if not hub.accept(self):
            return
        if not hub.config.proxy_protocol and self.tls is None:
            self._upgrade(transport, b"")  # the common case: nothing to wait for
            return
        self._deadline = self.loop.call_later(
            hub.config.handshake_timeout, hub.drop, self, "incomplete_handshake"
        )
        if hub.config.proxy_protocol:
            self._header = bytearray()
        else:
            self._advance(b"")

    def data_received(self, data: bytes) -> None:
        if self._upgraded:
            super().data_received(data)
        elif self._header is not None:
            self._read_header(data)
        elif not self.refused:
            self._early.append(data)  # plaintext that TLS delivered before start_tls returned

    def eof_received(self) -> None:
        if self._upgraded:
            super().eof_received()
        # An EOF before the WebSocket handshake: returning None closes the transport.

    def connection_lost(self, exc: Exception | None) -> None:
        if self._upgraded:
            super().connection_lost(exc)
        self._gone()

    def _gone(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.hub.release(self)

    # -- before the WebSocket handshake ----------------------------------------------------

    def _read_header(self, data: bytes) -> None:
        header_bytes = self._header
        assert header_bytes is not None
        header_bytes += data
        try:
            header = parse_header(bytes(header_bytes))
        except ProxyHeaderError as exc:
            self._header = None
            self.hub.drop(self, "proxy_header", detail=exc.reason)
            return
        if header is None:
            return
        self._header = None
        if self.hub.admit(self, header.source[0] if header.source else None):
            self._advance(bytes(header_bytes[header.size :]))

    def _advance(self, rest: bytes) -> None:
        if self.tls is None:
            self._upgrade(self.transport, rest)
        else:  # PROXY + TLS is refused by the config, so `rest` is empty here
            self.transport.pause_reading()
            self.hub.spawn(self._start_tls(self.tls))

    async def _start_tls(self, context: ssl.SSLContext) -> None:
        raw = self.transport
        try:
            tls = await self.loop.start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self.hub.config.handshake_timeout,
                ssl_shutdown_timeout=self.hub.config.close_timeout,
            )
        except Exception:  # whatever broke the TLS handshake, the client is dropped
            tls = None
        if tls is None or self.refused or tls.is_closing():
            # asyncio does not call connection_lost for a connection lost mid-handshake.
            raw.abort()
            self._gone()
            return
        self._upgrade(tls, b"".join(self._early))
        self._early.clear()

    def _upgrade(self, transport: asyncio.BaseTransport, rest: bytes) -> None:
        """Hand the stream over to websockets, with bytes that were already read."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._upgraded = True
        super().connection_made(transport)
        if rest:
            super().data_received(rest)


def connection_class(hub: Hub, tls: ssl.SSLContext | None) -> type[CableConnection]:
    attributes = {"hub": hub, "tls": tls}
    return cast(type[CableConnection], type("CableConnection", (CableConnection,), attributes))
