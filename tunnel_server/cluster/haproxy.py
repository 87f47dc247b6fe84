"""The HAProxy configuration for a cluster of tunnel-server nodes, generated from the node list.

Pure: `render(nodes, front)` returns the configuration text and the routing-ID map text, so the
node list stays the one source of truth (the CLI, the systemd example under `deploy/` and the
tests all call it). How it routes:

- `/cable/new/{tunnel}` goes to the healthy node with the fewest connections (leastconn);
- `/cable/connect/{routing ID}/{tunnel}` goes to the node owning that routing ID, looked up in
  the map file; an unknown routing ID (or any other path) is answered 404 by HAProxy itself;
- each node is health-checked with `GET /healthz` every second and is out after two failures
  (or at once, on the first refused connection);
- `timeout tunnel` outlasts the tunnel TTL, so nodes, not HAProxy, decide when a tunnel ends;
- one stick table counts open connections per client address across all nodes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

from hybrid.protocol.constants import ROUTING_ID_SIZE

from .errors import ClusterError, ClusterReason

#: Backend holding every node, for new tunnels; per-node backends track its health checks.
NEW_BACKEND = "new_tunnels"
_HEX = "[0-9A-Fa-f]"


def normal_routing_id(text: str) -> str:
    """`text` as 6 uppercase hex digits, or `ClusterError` naming the bad value."""
    if len(text) != 2 * ROUTING_ID_SIZE or not set(text) <= set(string.hexdigits):
        raise ClusterError(
            ClusterReason.BAD_NODE_LIST,
            f"routing ID {text!r} is not {2 * ROUTING_ID_SIZE} hex digits (e.g. 0A1B2C): "
            "fix it in the node list.",
        )
    return text.upper()


@dataclass(frozen=True)
class Node:
    """One tunnel-server process: its routing ID and the address HAProxy reaches it on."""

    routing_id: str
    host: str
    port: int

    @property
    def name(self) -> str:
        """The HAProxy server and backend name of this node."""
        return f"node_{self.routing_id}"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Front:
    """Everything about the HAProxy side that is not the node list."""

    #: Where the map file RID → backend will be (the config refers to it by this path).
    map_path: str
    host: str = "127.0.0.1"
    port: int = 8443
    #: One PEM file with certificate chain and key; None serves plain ws://.
    tls_pem: str | None = None
    #: The nodes' tunnel TTL and shutdown grace, in seconds.
    ttl: float = 120.0
    grace: float = 10.0
    handshake_timeout: float = 10.0
    #: Send PROXY protocol v2 to the nodes (they must run with --proxy-protocol).
    proxy_protocol: bool = False
    #: Open connections one client address may hold across the whole cluster.
    max_connections_per_ip: int = 1000
    max_connections: int = 20000
    #: Unix socket of HAProxy's runtime API (admin level); None leaves it out.
    stats_socket: str | None = None


@dataclass(frozen=True)
class HaproxyFiles:
    config: str
    rid_map: str


def check_nodes(nodes: Sequence[Node]) -> None:
    """Refuse an empty list, malformed or repeated routing IDs, and repeated addresses."""
    if not nodes:
        raise ClusterError(ClusterReason.BAD_NODE_LIST, "the node list is empty: add a node.")
    seen_ids: set[str] = set()
    seen_addresses: set[str] = set()
    for node in nodes:
        if normal_routing_id(node.routing_id) != node.routing_id:
            raise ClusterError(
                ClusterReason.BAD_NODE_LIST,
                f"routing ID {node.routing_id!r} must be written in uppercase hex.",
            )
        if not node.host or any(c.isspace() or not c.isprintable() for c in node.host):
            raise ClusterError(
                ClusterReason.BAD_NODE_LIST,
                f"node {node.routing_id} has host {node.host!r}: give an address or name.",
            )
        if not 0 < node.port <= 65535:
            raise ClusterError(
                ClusterReason.BAD_NODE_LIST,
                f"node {node.routing_id} has port {node.port}: use 1..65535.",
            )
        if node.routing_id in seen_ids:
            raise ClusterError(
                ClusterReason.BAD_NODE_LIST,
                f"routing ID {node.routing_id} appears twice: every node needs its own.",
            )
        if node.address in seen_addresses:
            raise ClusterError(
                ClusterReason.BAD_NODE_LIST,
                f"address {node.address} appears twice: every node needs its own port.",
            )
        seen_ids.add(node.routing_id)
        seen_addresses.add(node.address)


#: HAProxy's counters are C ints; its timers count milliseconds in one (about 24.8 days).
HAPROXY_INT_MAX = 2**31 - 1
HAPROXY_TIMER_MAX = HAPROXY_INT_MAX // 1000
#: Seconds added to the TTL or grace for HAProxy's own `timeout tunnel` and `hard-stop-after`.
TIMER_MARGIN = 30


def check_front(front: Front) -> None:
    """Refuse settings HAProxy would reject or misread: numbers out of range, or words with
    spaces or control characters that would split or end a configuration line."""

    def refuse(message: str) -> None:
        raise ClusterError(ClusterReason.BAD_NODE_FLAGS, message)

    if not 1 <= front.port <= 65535:
        refuse(f"--port must be 1..65535, not {front.port}.")
    for flag, count in (
        ("--max-connections", front.max_connections),
        ("--max-connections-per-ip", front.max_connections_per_ip),
    ):
        if not 1 <= count <= HAPROXY_INT_MAX:
            refuse(f"{flag} must be 1..{HAPROXY_INT_MAX}, not {count}.")
    for flag, seconds, zero_ok in (
        ("--ttl", front.ttl, False),
        ("--grace", front.grace, True),
        ("--handshake-timeout", front.handshake_timeout, False),
    ):
        # HAProxy's timers (the TTL and grace plus a margin) must fit its 32-bit milliseconds
        top = HAPROXY_TIMER_MAX - TIMER_MARGIN
        if not 0 <= seconds <= top or (seconds == 0 and not zero_ok):
            least = "0" if zero_ok else "above 0"
            refuse(f"{flag} must be {least} up to {top} seconds, not {seconds}.")
    for flag, word in (
        ("--host", front.host),
        ("--map-path", front.map_path),
        ("--tls-pem", front.tls_pem),
        ("--stats-socket", front.stats_socket),
    ):
        if word is not None and (not word or any(c.isspace() or not c.isprintable() for c in word)):
            refuse(f"{flag} {word!r} must be non-empty, without spaces or control characters.")


def _seconds(value: float) -> str:
    return f"{math.ceil(value)}s"


def _bind(front: Front) -> str:
    host = front.host
    line = f"    bind {host}:{front.port}"
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            # the IPv6 wildcard also takes IPv4 clients, whatever the system's default
            line = f"    bind [{host}]:{front.port}" + (" v4v6" if host == "::" else "")
    if front.tls_pem is not None:
        line += f" ssl crt {front.tls_pem} alpn http/1.1"
    return line


def _global(front: Front) -> list[str]:
    lines = [
        "global",
        f"    maxconn {front.max_connections}",
        "    # after a reload the old worker keeps its live tunnels (at most a TTL); on stop the",
        "    # nodes end them within their grace; this only bounds a stop or reload gone wrong",
        f"    hard-stop-after {_seconds(max(front.ttl, front.grace) + TIMER_MARGIN)}",
    ]
    if front.stats_socket is not None:
        lines.append(f"    stats socket {front.stats_socket} mode 600 level admin")
    return lines


def _defaults(front: Front) -> list[str]:
    return [
        "defaults",
        "    mode http",
        "    option dontlognull",
        "    timeout connect 1s",
        "    timeout client 30s",
        "    timeout server 30s",
        f"    timeout http-request {_seconds(front.handshake_timeout)}",
        "    # longer than the tunnel TTL: the nodes end tunnels, HAProxy never cuts one short",
        f"    timeout tunnel {_seconds(front.ttl + TIMER_MARGIN)}",
        "    timeout client-fin 5s",
        "    timeout check 1s",
        "    # a refused connection is retried on another node (new tunnels only can succeed)",
        "    retries 2",
        "    option redispatch 1",
        "    default-server inter 1s fall 2 rise 2",
    ]


def _frontend(front: Front) -> list[str]:
    new = f"^/cable/new/{_HEX}{{32}}$"
    join = f"^/cable/connect/{_HEX}{{6}}/{_HEX}{{32}}$"
    not_found = (
        'string "Not found: this routing ID or path is unknown in this cluster; use the '
        "routing ID from the phone's advert and the paths /cable/new/{32 hex} or "
        '/cable/connect/{6 hex}/{32 hex}.\\n"'
    )
    return [
        "frontend cable",
        _bind(front),
        f"    maxconn {front.max_connections}",
        "    # open connections per client address, counted across all nodes",
        "    stick-table type ipv6 size 200k expire 10m store conn_cur",
        "    tcp-request connection track-sc0 src",
        "    tcp-request connection reject if"
        f" {{ sc0_conn_cur gt {front.max_connections_per_ip} }}",
        "    # the cluster's own health: 503 when no node can take a new tunnel",
        "    monitor-uri /healthz",
        f"    monitor fail if {{ nbsrv({NEW_BACKEND}) lt 1 }}",
        f"    acl new_tunnel path_reg {new}",
        f"    acl join_tunnel path_reg {join}",
        f"    http-request set-var(txn.node) path,field(4,/),upper,map({front.map_path})"
        " if join_tunnel",
        "    # an unknown routing ID or any other path: 404 here, no node involved",
        "    http-request return status 404 content-type text/plain"
        f" {not_found} if join_tunnel !{{ var(txn.node) -m found }} or !new_tunnel !join_tunnel",
        f"    use_backend {NEW_BACKEND} if new_tunnel",
        "    use_backend %[var(txn.node)] if join_tunnel",
    ]


def _new_backend(nodes: Sequence[Node], front: Front) -> list[str]:
    proxy = " send-proxy-v2 check-send-proxy" if front.proxy_protocol else ""
    lines = [
        f"backend {NEW_BACKEND}",
        "    balance leastconn",
        "    option httpchk",
        "    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host cluster-check",
        "    http-check expect status 200",
    ]
    for node in nodes:
        lines.append(
            f"    server {node.name} {node.address} check{proxy}"
            " observe layer4 error-limit 1 on-error mark-down"
        )
    return lines


def _node_backend(node: Node, front: Front) -> list[str]:
    proxy = " send-proxy-v2" if front.proxy_protocol else ""
    return [
        f"backend {node.name}",
        f"    server {node.name} {node.address} track {NEW_BACKEND}/{node.name}{proxy}",
    ]


def render(nodes: Sequence[Node], front: Front) -> HaproxyFiles:
    """HAProxy's configuration and routing-ID map for `nodes` behind `front`."""
    check_nodes(nodes)
    check_front(front)
    header = [
        "# Generated by tunnel_server.cluster from the node list: change the list and generate",
        "# again rather than editing this file.",
    ]
    sections = [
        header + _global(front),
        _defaults(front),
        _frontend(front),
        _new_backend(nodes, front),
        *(_node_backend(node, front) for node in nodes),
    ]
    config = "\n\n".join("\n".join(section) for section in sections) + "\n"
    rid_map = "".join(f"{node.routing_id} {node.name}\n" for node in nodes)
    return HaproxyFiles(config, rid_map)
