"""Prometheus metrics of one server, in a registry of its own so several servers can share a
process (tests) without clashing.

Relayed messages and bytes are plain integers on each tunnel, summed only when scraped: the
relay loop must not pay for a locked counter on every message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

#: Why a connection was refused before it became part of a tunnel.
REJECTION_REASONS = (
    "not_found",
    "wrong_routing_id",
    "unknown_tunnel",
    "duplicate_tunnel",
    "desktop_already_joined",
    "origin_not_allowed",
    "max_tunnels",
    "per_ip_limit",
    "bad_handshake",
    "incomplete_handshake",
    "shutting_down",
    "max_connections",
    "untrusted_proxy",
    "proxy_header",
    "tunnels_per_ip",
    "metrics_not_allowed",
)

#: Why a tunnel ended.
COMPLETION_REASONS = (
    "normal",
    "peer_error",
    "disconnected",
    "message_too_big",
    "text_frame",
    "message_limit",
    "protocol_error",
    "ping_timeout",
    "ttl",
    "join_timeout",
    "shutdown",
)

DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 300.0)

#: (phone→desktop messages, desktop→phone messages, phone→desktop bytes, desktop→phone bytes)
RelayTotals = tuple[int, int, int, int]


class _RelayCollector(Collector):
    def __init__(self, totals: Callable[[], RelayTotals]) -> None:
        self._totals = totals

    def collect(self) -> Iterable[Metric]:
        up_msgs, down_msgs, up_bytes, down_bytes = self._totals()
        messages = CounterMetricFamily(
            "cable_relayed_messages", "WebSocket messages relayed", labels=["direction"]
        )
        messages.add_metric(["phone_to_desktop"], up_msgs)
        messages.add_metric(["desktop_to_phone"], down_msgs)
        data = CounterMetricFamily(
            "cable_relayed_bytes", "Payload bytes relayed", labels=["direction"]
        )
        data.add_metric(["phone_to_desktop"], up_bytes)
        data.add_metric(["desktop_to_phone"], down_bytes)
        return [messages, data]


class Metrics:
    """The counters an operator watches; `render()` is the /metrics body."""

    def __init__(self, active: Callable[[], int], totals: Callable[[], RelayTotals]) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        Gauge("cable_tunnels_active", "Tunnels with a live side", registry=reg).set_function(active)
        self.created = Counter("cable_tunnels_created", "Tunnels opened by a phone", registry=reg)
        self.completed = Counter(
            "cable_tunnels_completed", "Tunnels ended, by reason", ["reason"], registry=reg
        )
        self.rejections = Counter(
            "cable_rejections", "Connections refused, by reason", ["reason"], registry=reg
        )
        self.duration = Histogram(
            "cable_tunnel_duration_seconds",
            "Tunnel life from the phone's connect to the last side gone",
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        for reason in REJECTION_REASONS:
            self.rejections.labels(reason)
        for reason in COMPLETION_REASONS:
            self.completed.labels(reason)
        reg.register(_RelayCollector(totals))
        ProcessCollector(registry=reg)

    def reject(self, reason: str) -> None:
        self.rejections.labels(reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
