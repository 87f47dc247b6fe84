"""Settings of one tunnel server, checked once so that the rest of the code can trust them."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import resource
import secrets
import string
from dataclasses import dataclass, field

from hybrid.errors import HybridError
from hybrid.protocol.constants import ROUTING_ID_SIZE

from .addresses import LOOPBACK, Network, parse_networks

#: File descriptors kept free for the listening socket, logs, TLS files and the like.
FD_HEADROOM = 100
#: The --max-connections default never goes above this, however high the open-file limit.
MAX_CONNECTIONS_CEILING = 50_000


class ServerConfigError(HybridError, ValueError):
    """A tunnel-server setting is invalid; the message names the flag to fix."""


def random_routing_id() -> str:
    """A fresh routing ID (6 uppercase hex digits), so that each start is its own 'node'."""
    return secrets.token_hex(ROUTING_ID_SIZE).upper()


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (plain ws:// is safe only there)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public address


def open_file_limit() -> int | None:
    """The process's soft open-file limit, or None when it is unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def default_max_connections() -> int:
    """Below the open-file limit with headroom, so that accept() never fails for lack of fds."""
    limit = open_file_limit()
    if limit is None:
        return MAX_CONNECTIONS_CEILING
    return max(1, min(limit - FD_HEADROOM, MAX_CONNECTIONS_CEILING))


@dataclass(frozen=True)
class ServerConfig:
    """Every knob of the tunnel server; field names mirror the command-line flags."""

    host: str = "127.0.0.1"
    port: int = 8080
    routing_id: str = field(default_factory=random_routing_id)
    ttl: float = 120.0
    join_timeout: float = 60.0
    max_message_size: int = 16384
    max_messages: int = 64
    max_tunnels: int = 10_000
    max_connections_per_ip: int = 1000
    handshake_timeout: float = 10.0
    allow_origins: tuple[str, ...] = ()
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure: bool = False
    grace: float = 10.0
    log_level: str = "INFO"
    #: Phone messages held while no desktop has joined; past this the phone is not read.
    max_buffered: int = 8
    #: Seconds to wait for a client's close frame before dropping the TCP connection.
    close_timeout: float = 5.0
    #: WebSocket ping interval in seconds; None (the default) leaves dead-peer detection to
    #: TCP keepalive on the listening socket, which costs no task per connection.
    ping_interval: float | None = None
    #: Open connections in total; None picks `default_max_connections()`.
    max_connections: int | None = None
    #: IPv6 clients are counted per network of this prefix length (1..128).
    ipv6_prefix: int = 64
    #: Waiting or joined tunnels opened from one client address (or IPv6 prefix).
    max_tunnels_per_ip: int = 100
    #: Networks whose clients may read /metrics; others get 404.
    metrics_allow: tuple[str, ...] = LOOPBACK
    #: Every connection starts with a PROXY protocol v2 header from a trusted proxy.
    proxy_protocol: bool = False
    #: Peers allowed to send that header (only used with `proxy_protocol`).
    trusted_proxies: tuple[str, ...] = LOOPBACK

    def __post_init__(self) -> None:
        hexdigits = set(string.hexdigits)
        rid = self.routing_id
        if len(rid) != 2 * ROUTING_ID_SIZE or not set(rid) <= hexdigits:
            raise ServerConfigError(
                f"--routing-id must be {2 * ROUTING_ID_SIZE} hex digits (e.g. 0A1B2C), "
                f"got {rid!r}: fix the value or leave it out for a random one."
            )
        object.__setattr__(self, "routing_id", rid.upper())
        origins = tuple(o.strip().lower().rstrip("/") for o in self.allow_origins)
        object.__setattr__(self, "allow_origins", origins)
        if self.max_connections is None:
            object.__setattr__(self, "max_connections", default_max_connections())
        self._check_numbers()
        for flag, specs in (
            ("--metrics-allow", self.metrics_allow),
            ("--trusted-proxies", self.trusted_proxies),
        ):
            try:
                parse_networks(specs)
            except ValueError as exc:
                raise ServerConfigError(
                    f"{flag}: {exc}; give comma-separated CIDRs such as 127.0.0.0/8,::1/128."
                ) from None
        if self.proxy_protocol and not self.trusted_proxies:
            raise ServerConfigError(
                "--proxy-protocol with an empty --trusted-proxies would drop every connection: "
                "give the proxy's address, e.g. --trusted-proxies 127.0.0.1/32."
            )
        if self.proxy_protocol and self.tls_cert is not None:
            raise ServerConfigError(
                "--proxy-protocol cannot be combined with --tls-cert: terminate TLS at the proxy "
                "(it has to read the request path to route by routing ID anyway)."
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ServerConfigError(
                "--tls-cert and --tls-key must be given together: pass both files, or neither."
            )
        if self.tls_cert is None and not self.insecure and not is_loopback(self.host):
            raise ServerConfigError(
                f"refusing plain ws:// on non-loopback host {self.host!r}: give --tls-cert and "
                "--tls-key, put a TLS proxy in front and pass --insecure, or use --host 127.0.0.1."
            )

    def _check_numbers(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ServerConfigError(
                f"--port must be 0..65535 (0 picks a free port), not {self.port}."
            )
        positive = {
            "--ttl": self.ttl,
            "--join-timeout": self.join_timeout,
            "--max-message-size": self.max_message_size,
            "--max-messages": self.max_messages,
            "--max-tunnels": self.max_tunnels,
            "--max-connections-per-ip": self.max_connections_per_ip,
            "--handshake-timeout": self.handshake_timeout,
            "--max-buffered": self.max_buffered,
            "--close-timeout": self.close_timeout,
            "--max-connections": self.max_connections or 0,
            "--max-tunnels-per-ip": self.max_tunnels_per_ip,
        }
        for flag, value in positive.items():
            if not 0 < value < math.inf:
                raise ServerConfigError(f"{flag} must be greater than 0 and finite, not {value}.")
        if not 1 <= self.ipv6_prefix <= 128:
            raise ServerConfigError(f"--ipv6-prefix must be 1..128, not {self.ipv6_prefix}.")
        if not 0 <= self.grace < math.inf:
            raise ServerConfigError(
                f"--grace must be 0 or more seconds (finite), not {self.grace}."
            )
        if self.ping_interval is not None and not 0 < self.ping_interval < math.inf:
            raise ServerConfigError(
                "--ping-interval must be greater than 0 and finite (or 0 to turn off)."
            )

    @property
    def routing_id_bytes(self) -> bytes:
        return bytes.fromhex(self.routing_id)

    @property
    def metrics_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.metrics_allow)

    @property
    def trusted_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def scheme(self) -> str:
        return "ws" if self.tls_cert is None else "wss"

    def replace(self, **changes: object) -> ServerConfig:
        """A copy with some fields changed (and checked again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
