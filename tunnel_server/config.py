"""Settings of one tunnel server, checked once so that the rest of the code can trust them."""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
import string
from dataclasses import dataclass, field

from hybrid.errors import HybridError
from hybrid.protocol.constants import ROUTING_ID_SIZE


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
        self._check_numbers()
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
        }
        for flag, value in positive.items():
            if not value > 0:
                raise ServerConfigError(f"{flag} must be greater than 0, not {value}.")
        if self.grace < 0:
            raise ServerConfigError(f"--grace must be 0 or more seconds, not {self.grace}.")
        if self.ping_interval is not None and not self.ping_interval > 0:
            raise ServerConfigError("--ping-interval must be greater than 0 (or 0 to turn off).")

    @property
    def routing_id_bytes(self) -> bytes:
        return bytes.fromhex(self.routing_id)

    @property
    def scheme(self) -> str:
        return "ws" if self.tls_cert is None else "wss"

    def replace(self, **changes: object) -> ServerConfig:
        """A copy with some fields changed (and checked again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
