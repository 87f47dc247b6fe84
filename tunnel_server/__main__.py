"""`python -m tunnel_server`: run a caBLE tunnel server until SIGTERM or Ctrl-C.

Prints exactly one line to stdout, `listening on ws://HOST:PORT` (or wss://), so a parent
process can read the real port when it passed `--port 0`. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .config import (
    FD_HEADROOM,
    MAX_CONNECTIONS_CEILING,
    ServerConfig,
    ServerConfigError,
)
from .exit_codes import EXIT_USAGE
from .logs import configure_logging
from .server import TunnelServer


def build_parser() -> argparse.ArgumentParser:
    d = ServerConfig(routing_id="000000")
    p = argparse.ArgumentParser(
        prog="python -m tunnel_server",
        description="Self-hosted FIDO hybrid (caBLE v2) tunnel server: relays encrypted "
        "WebSocket messages between a phone and a desktop. It never sees keys or plaintext.",
    )
    add = p.add_argument
    add("--host", default=d.host, help="address to listen on (default %(default)s)")
    add("--port", type=int, default=d.port, help="TCP port; 0 picks a free one (%(default)s)")
    add(
        "--routing-id",
        metavar="HEX",
        help="this node's routing ID, 6 hex digits (default: random at each start)",
    )
    add(
        "--ttl",
        type=float,
        default=d.ttl,
        metavar="SECONDS",
        help="tunnel lifetime from the phone's connect (%(default)s)",
    )
    add(
        "--join-timeout",
        type=float,
        default=d.join_timeout,
        metavar="SECONDS",
        help="time the desktop has to join after the phone connects (%(default)s)",
    )
    add(
        "--max-message-size",
        type=int,
        default=d.max_message_size,
        metavar="BYTES",
        help="largest message relayed; bigger closes the tunnel with 1009 (%(default)s)",
    )
    add(
        "--max-messages",
        type=int,
        default=d.max_messages,
        metavar="N",
        help="messages per side; one more closes the tunnel with 1008 (%(default)s)",
    )
    add(
        "--max-tunnels",
        type=int,
        default=d.max_tunnels,
        metavar="N",
        help="concurrent tunnels; more get HTTP 503 (%(default)s)",
    )
    add(
        "--max-connections-per-ip",
        type=int,
        default=d.max_connections_per_ip,
        metavar="N",
        help="open connections per client address; more are dropped (%(default)s)",
    )
    add(
        "--handshake-timeout",
        type=float,
        default=d.handshake_timeout,
        metavar="SECONDS",
        help="time to finish the TLS and HTTP upgrade (%(default)s)",
    )
    add(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        dest="allow_origins",
        help="accept only this Origin header, e.g. wss://cable.example.com (repeatable; "
        "default: any origin)",
    )
    add("--tls-cert", metavar="FILE", help="PEM certificate chain; serves wss://")
    add("--tls-key", metavar="FILE", help="PEM private key for --tls-cert")
    add(
        "--insecure",
        action="store_true",
        help="allow plain ws:// on a non-loopback address (only behind a TLS proxy)",
    )
    add(
        "--grace",
        type=float,
        default=d.grace,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, time live tunnels get to finish (%(default)s)",
    )
    add(
        "--log-level",
        default=d.log_level,
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level for stderr (%(default)s)",
    )
    add(
        "--max-buffered",
        type=int,
        default=d.max_buffered,
        metavar="N",
        help="phone messages held until the desktop joins (%(default)s)",
    )
    add(
        "--close-timeout",
        type=float,
        default=d.close_timeout,
        metavar="SECONDS",
        help="wait for a client's close frame before dropping it (%(default)s)",
    )
    add(
        "--ping-interval",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="WebSocket ping interval; 0 (default) relies on TCP keepalive instead",
    )
    add(
        "--max-connections",
        type=int,
        default=None,
        metavar="N",
        help="open connections in total; more are dropped at accept (default: the open-file "
        f"limit minus {FD_HEADROOM}, at most {MAX_CONNECTIONS_CEILING})",
    )
    add(
        "--ipv6-prefix",
        type=int,
        default=d.ipv6_prefix,
        metavar="BITS",
        help="count IPv6 clients per network of this prefix length (%(default)s)",
    )
    add(
        "--max-tunnels-per-ip",
        type=int,
        default=d.max_tunnels_per_ip,
        metavar="N",
        help="waiting or joined tunnels one address may open; more get HTTP 429 (%(default)s)",
    )
    add(
        "--metrics-allow",
        type=_cidrs,
        default=d.metrics_allow,
        metavar="CIDR[,CIDR...]",
        help="clients that may read /metrics; others get 404 (default: loopback)",
    )
    add(
        "--proxy-protocol",
        action="store_true",
        help="every connection starts with a PROXY protocol v2 header (HAProxy send-proxy-v2)",
    )
    add(
        "--trusted-proxies",
        type=_cidrs,
        default=d.trusted_proxies,
        metavar="CIDR[,CIDR...]",
        help="with --proxy-protocol, peers that may send the header; others are dropped "
        "(default: loopback)",
    )
    add("--uvloop", action="store_true", help="run on uvloop (pip install uvloop)")
    return p


def _cidrs(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    fields: dict[str, Any] = {
        name: getattr(args, name)
        for name in (
            "host",
            "port",
            "ttl",
            "join_timeout",
            "max_message_size",
            "max_messages",
            "max_tunnels",
            "max_connections_per_ip",
            "handshake_timeout",
            "tls_cert",
            "tls_key",
            "insecure",
            "grace",
            "max_buffered",
            "close_timeout",
            "max_connections",
            "ipv6_prefix",
            "max_tunnels_per_ip",
            "metrics_allow",
            "proxy_protocol",
            "trusted_proxies",
        )
    }
    fields["allow_origins"] = tuple(args.allow_origins)
    fields["log_level"] = args.log_level
    fields["ping_interval"] = args.ping_interval or None
    if args.routing_id is not None:
        fields["routing_id"] = args.routing_id
    return ServerConfig(**fields)


async def serve_until_signal(config: ServerConfig) -> int:
    """Serve until the first SIGTERM/SIGINT, then stop gracefully; a second one cuts grace."""
    server = TunnelServer(config)
    try:
        await server.start()
    except ServerConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"listening on {server.url}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            server.force_stop()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    await server.stop()
    return 0


def _runner(use_uvloop: bool) -> Callable[[Coroutine[Any, Any, int]], int]:
    if not use_uvloop:
        return asyncio.run
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError as exc:
        raise ServerConfigError("--uvloop needs the uvloop package: pip install uvloop") from exc

    def run(main: Coroutine[Any, Any, int]) -> int:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)

    return run


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        run = _runner(args.uvloop)
    except ServerConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(config.log_level)
    return run(serve_until_signal(config))


if __name__ == "__main__":
    sys.exit(main())
