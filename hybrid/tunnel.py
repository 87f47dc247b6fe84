"""WebSocket tunnel client: the phone opens `/cable/new/…`, the desktop `/cable/connect/…`.

Moves bytes only; everything it carries after the handshake is already encrypted.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Final
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    PayloadTooBig,
)
from websockets.typing import Origin, Subprotocol

from hybrid.errors import ProtocolError, ProtocolReason, TunnelError
from hybrid.protocol import connect_path, new_tunnel_path
from hybrid.protocol.constants import (
    CABLE_WEBSOCKET_PROTOCOL,
    MAX_INCOMING_MESSAGE_SIZE,
    ROUTING_ID_HEADER,
    ROUTING_ID_SIZE,
)
from hybrid.text import printable

log = logging.getLogger(__name__)

DEFAULT_OPEN_TIMEOUT: Final = 10.0
#: How long a graceful close waits for the other end's close frame.
CLOSE_TIMEOUT: Final = 2.0
_SUBPROTOCOL: Final = Subprotocol(CABLE_WEBSOCKET_PROTOCOL)


class TunnelClosed(TunnelError):
    """The other side or the tunnel server closed the tunnel.

    `code` is the close code, `reason` the close reason with control characters replaced
    (the other side chose it).
    """

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plaintext_warning(url: str | None) -> str | None:
    """What to tell the user about a `ws://` tunnel URL to another machine, else None.

    The tunnel's contents stay end-to-end encrypted, but without TLS anyone on the path sees
    the routing and tunnel IDs and can cut or hijack the connection.
    """
    if url is None or urlsplit(url).scheme.lower() != "ws" or _is_loopback(url):
        return None
    host = urlsplit(url).hostname or "?"  # not netloc: it may hold a password
    return (
        f"The tunnel server {printable(host)} is reached over plain ws://, "
        "without TLS: the sign-in stays encrypted end to end, but anyone on the network can "
        "see and cut the connection. Use a wss:// tunnel URL unless this network is trusted."
    )


def warn_if_plaintext(url: str | None) -> str | None:
    """Log `plaintext_warning(url)` if there is one, and return it for the user's UI."""
    warning = plaintext_warning(url)
    if warning is not None:
        log.warning("%s", warning)
    return warning


def _refusal_message(status: int, side: str) -> str:
    if status == 404:
        if side == "desktop":
            return (
                "The tunnel server does not know this session (HTTP 404): the phone may have "
                "given up or used another server. Scan a new QR code and try again."
            )
        return "The tunnel server refused the tunnel (HTTP 404): check the tunnel server URL."
    if status == 409:
        return (
            "The tunnel server already has this tunnel in use (HTTP 409): scan a new QR code "
            "and try again."
        )
    if status == 410:
        return "The tunnel server says this tunnel is gone (HTTP 410): scan a new QR code."
    return f"The tunnel server refused the connection (HTTP {status}): try again later."


class Tunnel:
    """One end of a relay: binary messages in, binary messages out."""

    def __init__(self, connection: ClientConnection, routing_id: bytes | None = None) -> None:
        self._connection = connection
        self.routing_id = routing_id

    @classmethod
    async def _open(cls, url: str, side: str, open_timeout: float) -> ClientConnection:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        try:
            connection = await connect(
                url,
                subprotocols=[_SUBPROTOCOL],
                origin=Origin(origin),
                compression=None,
                max_size=MAX_INCOMING_MESSAGE_SIZE,
                open_timeout=open_timeout,
                close_timeout=CLOSE_TIMEOUT,
                proxy=None if _is_loopback(url) else True,
                user_agent_header="fido-hybrid",
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise TunnelError(_refusal_message(status, side), http_status=status) from exc
        except InvalidURI as exc:
            raise TunnelError(f"The tunnel server URL is invalid: {printable(str(exc))}") from exc
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise TunnelError(
                "Could not reach the tunnel server: check this computer's internet connection "
                f"(or the --tunnel-url you gave) and try again. "
                f"({type(exc).__name__}: {printable(str(exc))})"  # may quote the server's headers
            ) from exc
        if connection.subprotocol != _SUBPROTOCOL:
            await connection.close()
            raise TunnelError(
                "The server at that address is not a caBLE tunnel server (it did not select "
                "the fido.cable subprotocol): check the tunnel server URL."
            )
        return connection

    @classmethod
    async def open_new(
        cls, base_url: str, tunnel_id: bytes, *, open_timeout: float = DEFAULT_OPEN_TIMEOUT
    ) -> Tunnel:
        """Phone side: create the tunnel and read the routing ID the server assigned."""
        connection = await cls._open(base_url + new_tunnel_path(tunnel_id), "phone", open_timeout)
        assert connection.response is not None
        values = connection.response.headers.get_all(ROUTING_ID_HEADER)
        try:
            if len(values) != 1:
                raise ValueError("need exactly one routing ID header")
            routing_id = bytes.fromhex(values[0])
            if len(routing_id) != ROUTING_ID_SIZE:
                raise ValueError("routing ID must be 3 bytes")
        except ValueError as exc:
            await connection.close()
            raise TunnelError(
                "The tunnel server did not assign a valid routing ID: it is not a caBLE tunnel "
                "server, or a proxy removed its headers."
            ) from exc
        return cls(connection, routing_id)

    @classmethod
    async def open_connect(
        cls,
        base_url: str,
        routing_id: bytes,
        tunnel_id: bytes,
        *,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
    ) -> Tunnel:
        """Desktop side: join the tunnel the phone announced in its advert."""
        url = base_url + connect_path(routing_id, tunnel_id)
        return cls(await cls._open(url, "desktop", open_timeout), routing_id)

    async def send(self, message: bytes) -> None:
        """Send one binary message."""
        try:
            await self._connection.send(message)
        except ConnectionClosed as exc:
            raise self._closed(exc) from exc

    async def recv(self) -> bytes:
        """Receive one binary message; a text frame is a protocol violation."""
        try:
            message = await self._connection.recv()
        except ConnectionClosed as exc:
            raise self._closed(exc) from exc
        if isinstance(message, str):
            await self.close(code=1003)
            raise ProtocolError(
                "the tunnel carried a text message; only binary is allowed",
                reason=ProtocolReason.TEXT_FRAME,
            )
        return message

    @staticmethod
    def _closed(exc: ConnectionClosed) -> TunnelClosed:
        if isinstance(exc.__cause__, PayloadTooBig):
            return TunnelClosed("the peer sent a message larger than 1 MiB", 1009)
        close = exc.rcvd or exc.sent
        code = close.code if close else None
        reason = printable(close.reason) if close else ""  # the other side chose it
        said = f" ({reason})" if reason else ""
        return TunnelClosed(f"the tunnel closed (code {code}){said}", code, reason)

    async def close(self, code: int = 1000) -> None:
        """Close the WebSocket gracefully (bounded by CLOSE_TIMEOUT); safe to call again."""
        await self._connection.close(code=code)

    def abort(self) -> None:
        """Drop the connection at once, after a protocol error.

        A graceful close needs the peer's close frame, which websockets cannot read while its
        queue is full of unread messages, as it is when a peer floods us.
        """
        self._connection.transport.abort()
