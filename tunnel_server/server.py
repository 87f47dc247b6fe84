"""`TunnelServer`: start, serve and stop one tunnel server inside a running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from types import TracebackType
from typing import Self

from websockets.asyncio.server import Server, serve

from .config import FD_HEADROOM, ServerConfig, ServerConfigError, open_file_limit
from .connection import connection_class
from .hub import Hub, select_subprotocol
from .logs import log_event
from .relay import Relay

#: Frames queued per connection before websockets stops reading it (TCP back-pressure).
MAX_QUEUE = 4
#: Bytes buffered for writing per connection before a sender waits.
WRITE_LIMIT = 32 * 1024


class _EncryptedKey(Exception):
    """Raised from OpenSSL's passphrase callback instead of prompting on the terminal."""


def _refuse_passphrase() -> bytes:
    raise _EncryptedKey


def _tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key, password=_refuse_passphrase)
    except _EncryptedKey:
        raise ServerConfigError(
            f"the TLS key {config.tls_key!r} is encrypted and a server cannot ask for its "
            "passphrase: give an unencrypted key (openssl pkey -in KEY -out PLAIN_KEY), "
            "readable only by the server's user."
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise ServerConfigError(
            f"cannot load the TLS certificate {config.tls_cert!r} and key {config.tls_key!r} "
            f"({exc}): check both paths and that the key matches the certificate."
        ) from exc
    return context


#: TCP keepalive (idle, interval, probes): a vanished peer is noticed within about 30 s.
TCP_KEEPALIVE = (15, 5, 3)


def _listening_socket(host: str, port: int) -> socket.socket:
    """One socket, so that port 0 gives one port even for names with several addresses.

    Keepalive and TCP_NODELAY set here are inherited by every accepted socket (Linux), so dead
    peers are found by the kernel instead of a ping task per connection.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family = infos[0][0]
        sock = socket.create_server((host, port), family=family, backlog=1024)
    except (OSError, ValueError) as exc:  # ValueError: a name IDNA cannot encode, a NUL
        raise ServerConfigError(
            f"cannot listen on {host!r}:{port} ({exc}): pick another --port (0 = any free one) "
            "or check --host."
        ) from exc
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and create_server
    # makes proto-0 sockets: without this, Nagle holds a relayed record for ~40 ms whenever
    # it follows a message in the other direction (delayed ACK). Inherited by accepted sockets.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    options = ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT")
    for name, value in zip(options, TCP_KEEPALIVE, strict=True):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    return sock


def _warn_if_files_run_short(config: ServerConfig) -> None:
    """Every tunnel holds two connections; say which number to raise if they cannot fit."""
    limit = open_file_limit()
    needed = 2 * config.max_tunnels + FD_HEADROOM
    if limit is not None and limit < needed:
        log_event(
            logging.WARNING,
            "open_file_limit_too_low",
            open_file_limit=limit,
            needed=needed,
            advice=f"raise the open-file limit (ulimit -n, systemd LimitNOFILE) to {needed}, "
            f"or lower --max-tunnels to {max(1, (limit - FD_HEADROOM) // 2)}",
        )


class TunnelServer:
    """A tunnel server that tests and the CLI start and stop; one per `ServerConfig`."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._hub: Hub | None = None
        self._server: Server | None = None
        self._port: int | None = None
        self._force = asyncio.Event()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("TunnelServer.port is known only after start()")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ws://127.0.0.1:8080; tunnel paths go after it."""
        host = self.config.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{self.config.scheme}://{host}:{self.port}"

    @property
    def routing_id(self) -> str:
        return self.config.routing_id

    @property
    def hub(self) -> Hub:
        """Introspection for tests and the CLI: tunnels, per-address counts, metrics."""
        if self._hub is None:
            raise RuntimeError("TunnelServer.hub exists only after start()")
        return self._hub

    def active_tunnels(self) -> int:
        return 0 if self._hub is None else len(self._hub.tunnels)

    def open_connections(self) -> int:
        return 0 if self._hub is None else len(self._hub.connections)

    async def start(self) -> None:
        """Bind and start serving; raises `ServerConfigError` if the port or TLS files fail."""
        if self._server is not None:
            raise RuntimeError("TunnelServer.start() called twice")
        config = self.config
        tls = _tls_context(config)
        sock = _listening_socket(config.host, config.port)
        hub = Hub(config)
        ping = config.ping_interval
        try:
            self._server = await serve(
                Relay(hub),  # type: ignore[arg-type]  # websockets passes our connection class
                sock=sock,  # TLS is done per connection, after admission (connection.py)
                compression=None,
                subprotocols=None,
                select_subprotocol=select_subprotocol,
                process_request=hub.process_request,
                process_response=hub.process_response,
                server_header=None,
                open_timeout=config.handshake_timeout,
                ping_interval=ping,
                ping_timeout=ping,
                close_timeout=config.close_timeout,
                max_size=config.max_message_size,
                max_queue=MAX_QUEUE,
                write_limit=WRITE_LIMIT,
                create_connection=connection_class(hub, tls),
            )
        except BaseException:
            sock.close()
            raise
        self._hub = hub
        self._port = int(sock.getsockname()[1])
        log_event(logging.INFO, "server_started", url=self.url, routing_id=config.routing_id)
        _warn_if_files_run_short(config)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let joined tunnels finish for `grace` seconds, then close the rest."""
        server, hub = self._server, self._hub
        if server is None or hub is None:
            return
        grace = self.config.grace if grace is None else grace
        log_event(logging.INFO, "server_stopping", tunnels=len(hub.tunnels), grace=grace)
        server.close(close_connections=False)
        hub.shutdown_waiting()
        idle = asyncio.ensure_future(hub.idle.wait())
        force = asyncio.ensure_future(self._force.wait())
        try:
            await asyncio.wait({idle, force}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            force.cancel()
        hub.shutdown_all()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.close_timeout + 1):
                await server.wait_closed()
        for conn in list(hub.connections):
            conn.transport.abort()
        await server.wait_closed()
        if hub.tasks:
            await asyncio.wait(hub.tasks)
        self._server = None
        log_event(logging.INFO, "server_stopped")

    def force_stop(self) -> None:
        """Cut the grace period of a running `stop()` short (a second Ctrl-C)."""
        self._force.set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
