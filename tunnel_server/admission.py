"""Admission at TCP accept: the global cap, the proxy allow-list and per-address counts.

Runs in `CableConnection.connection_made` and after its PROXY header, before any TLS or HTTP,
so that a flood of idle connections costs one `accept` each and never a file descriptor more
than the limits allow.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .addresses import client_key, in_networks, parse_address
from .config import ServerConfig
from .logs import RateLimitedLog
from .metrics import Metrics

if TYPE_CHECKING:
    from .connection import CableConnection


class Admission:
    """The open connections of one server and how many each client address holds."""

    def __init__(self, config: ServerConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.connections: set[CableConnection] = set()
        #: Open connections per client key (`addresses.client_key`).
        self.per_ip: dict[str, int] = {}
        self._max_connections = config.max_connections or 1
        self._trusted = config.trusted_networks
        self._log_refusal = RateLimitedLog()

    def accept(self, conn: CableConnection) -> bool:
        """At TCP accept: apply the global cap and the proxy allow-list, then (without the
        PROXY protocol) the per-address cap. False means the connection was dropped."""
        config = self.config
        peer = conn.transport.get_extra_info("peername")
        peer_ip = str(peer[0]) if isinstance(peer, tuple) and peer else None
        conn.client_ip = peer_ip or "unknown"
        if len(self.connections) >= self._max_connections:
            self.drop(conn, "max_connections", limit=self._max_connections)
            return False
        if config.proxy_protocol:
            if not in_networks(parse_address(peer_ip or ""), self._trusted):
                self.drop(conn, "untrusted_proxy")
                return False
            self.connections.add(conn)
            return True
        self.connections.add(conn)
        return self.admit(conn, None)

    def admit(self, conn: CableConnection, client: str | None) -> bool:
        """Count `conn` under its client's address (`client`, or else the TCP peer's), or
        drop it when that address already has `--max-connections-per-ip` open."""
        if client is not None:
            conn.client_ip = client
        address = parse_address(conn.client_ip or "")
        if address is not None:
            conn.client_ip = str(address)
        key = client_key(address, self.config.ipv6_prefix)
        count = self.per_ip.get(key, 0)
        if count >= self.config.max_connections_per_ip:
            self.drop(conn, "per_ip_limit", limit=count)
            return False
        self.per_ip[key] = count + 1
        conn.ip_key = key
        return True

    def drop(self, conn: CableConnection, reason: str, **fields: object) -> None:
        """Close a connection that never reached HTTP, counting why."""
        if conn.refused:
            return
        conn.refused = True
        self.metrics.reject(reason)
        level = logging.INFO if reason == "incomplete_handshake" else logging.WARNING
        self._log_refusal(level, "dropped", reason=reason, client=conn.client_ip, **fields)
        conn.transport.abort()

    def forget(self, conn: CableConnection) -> bool:
        """Uncount a closed connection; False if it was never admitted (or already gone)."""
        if conn not in self.connections:
            return False
        self.connections.discard(conn)
        key, conn.ip_key = conn.ip_key, None
        if key is not None:
            count = self.per_ip[key] - 1
            if count:
                self.per_ip[key] = count
            else:
                del self.per_ip[key]
        return True
