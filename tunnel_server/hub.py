"""The tunnel table and its rules: who may connect, how tunnels pair up, how they end.

Every decision is taken synchronously in websockets' callbacks (`process_request`,
`process_response`, `connection_made`, `connection_lost`), so two clients racing for the same
tunnel ID can never both win. The relay itself lives in `relay.py`.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, cast

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from hybrid.protocol.constants import CABLE_WEBSOCKET_PROTOCOL, ROUTING_ID_HEADER

from .addresses import in_networks, parse_address
from .admission import Admission
from .config import ServerConfig
from .logs import log_event
from .metrics import Metrics, RelayTotals
from .paths import ConnectTunnel, NewTunnel, Route, Static, parse_path, short_id
from .tunnel import Ending, Role, Tunnel, ending_after_close

if TYPE_CHECKING:
    from .connection import CableConnection

_CABLE = Subprotocol(CABLE_WEBSOCKET_PROTOCOL)
_LIMIT_LABELS = frozenset(
    {"message_too_big", "text_frame", "message_limit", "ttl", "join_timeout", "protocol_error"}
)


def select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """Insist on `fido.cable`, as Chromium does on its side, with a message that says so."""
    if _CABLE in offered:
        return _CABLE
    raise NegotiationError(
        f"offer the WebSocket subprotocol {CABLE_WEBSOCKET_PROTOCOL!r} (Sec-WebSocket-Protocol)"
    )


class Hub(Admission):
    """All tunnels of one server, the per-address connection counts, and the metrics."""

    def __init__(self, config: ServerConfig) -> None:
        self.tunnels: dict[bytes, Tunnel] = {}
        super().__init__(config, Metrics(lambda: len(self.tunnels), self.relay_totals))
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.idle = asyncio.Event()
        self.idle.set()
        self._done: list[int] = [0, 0, 0, 0]
        self._routing_id = config.routing_id_bytes
        self._origins = frozenset(config.allow_origins)
        self._metrics_allowed = config.metrics_networks
        #: Live tunnels per opening (phone) address key, for --max-tunnels-per-ip.
        self.tunnels_per_ip: dict[str, int] = {}

    # -- connections -----------------------------------------------------------------------

    def release(self, conn: CableConnection) -> None:
        """Forget a closed TCP connection and end its tunnel if it had one."""
        if not self.forget(conn):
            return
        if conn.response is None and not conn.refused:
            self.metrics.reject("incomplete_handshake")
            self._log_refusal(
                logging.INFO, "rejected", reason="incomplete_handshake", client=conn.client_ip
            )
        tunnel = conn.tunnel
        if tunnel is None:
            return
        role = Role.PHONE if conn is tunnel.phone else Role.DESKTOP
        if tunnel.ending is None:
            self.end(tunnel, ending_after_close(conn.protocol, role), initiator=conn)
        if role is Role.PHONE:
            tunnel.phone_gone = True
        else:
            tunnel.desktop_gone = True
        if tunnel.finished:
            self._finish(tunnel)

    # -- HTTP ------------------------------------------------------------------------------

    def _refuse(
        self, conn: ServerConnection, status: http.HTTPStatus, reason: str, text: str
    ) -> Response:
        self.metrics.reject(reason)
        cable = cast("CableConnection", conn)
        self._log_refusal(
            logging.INFO, "rejected", reason=reason, status=int(status), client=cable.client_ip
        )
        return conn.respond(status, text + "\n")

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """Route the request; answer everything that is not a tunnel to join right here."""
        route = parse_path(request.path)
        if route is None:
            return self._refuse(
                conn,
                http.HTTPStatus.NOT_FOUND,
                "not_found",
                "Not found: tunnel paths are /cable/new/{32 hex} and "
                "/cable/connect/{6 hex}/{32 hex}; check the URL.",
            )
        if self.stopping:
            return self._refuse(
                conn,
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                "shutting_down",
                "The tunnel server is shutting down: try again in a moment.",
            )
        if isinstance(route, Static):
            return self._static(conn, route)
        if self._origins:
            origins = request.headers.get_all("Origin")
            if len(origins) != 1 or origins[0].lower().rstrip("/") not in self._origins:
                return self._refuse(
                    conn,
                    http.HTTPStatus.FORBIDDEN,
                    "origin_not_allowed",
                    "Origin not allowed on this tunnel server: connect from an "
                    "allowed origin or ask its operator to add yours.",
                )
        refusal = self._check_route(conn, route)
        if refusal is None:
            cast("CableConnection", conn).route = route
        return refusal

    def _static(self, conn: ServerConnection, route: Route) -> Response:
        if route is Static.HEALTHZ:
            return conn.respond(http.HTTPStatus.OK, "ok\n")
        client = parse_address(cast("CableConnection", conn).client_ip or "")
        if not in_networks(client, self._metrics_allowed):
            return self._refuse(
                conn,
                http.HTTPStatus.NOT_FOUND,
                "metrics_not_allowed",
                "Not found: tunnel paths are /cable/new/{32 hex} and "
                "/cable/connect/{6 hex}/{32 hex}; check the URL.",
            )
        response = conn.respond(http.HTTPStatus.OK, self.metrics.render().decode())
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
        return response

    def _check_route(self, conn: ServerConnection, route: Route) -> Response | None:
        if isinstance(route, NewTunnel):
            if route.tunnel_id in self.tunnels:
                return self._refuse(
                    conn,
                    http.HTTPStatus.CONFLICT,
                    "duplicate_tunnel",
                    "Conflict: this tunnel ID is already open; the phone must "
                    "derive a fresh tunnel ID from a new QR code.",
                )
            if len(self.tunnels) >= self.config.max_tunnels:
                self._log_refusal(logging.WARNING, "tunnel_limit", limit=self.config.max_tunnels)
                return self._refuse(
                    conn,
                    http.HTTPStatus.SERVICE_UNAVAILABLE,
                    "max_tunnels",
                    "The tunnel server is full: try again in a minute.",
                )
            owner = cast("CableConnection", conn).ip_key or ""
            if self.tunnels_per_ip.get(owner, 0) >= self.config.max_tunnels_per_ip:
                return self._refuse(
                    conn,
                    http.HTTPStatus.TOO_MANY_REQUESTS,
                    "tunnels_per_ip",
                    "Too many open tunnels from your address: finish or cancel one, "
                    "then try again.",
                )
            return None
        assert isinstance(route, ConnectTunnel)
        if route.routing_id != self._routing_id:
            return self._refuse(
                conn,
                http.HTTPStatus.NOT_FOUND,
                "wrong_routing_id",
                "Not found: this routing ID belongs to another tunnel server; "
                "use the routing ID from the phone's advert.",
            )
        tunnel = self.tunnels.get(route.tunnel_id)
        if tunnel is None or tunnel.ending is not None:
            return self._refuse(
                conn,
                http.HTTPStatus.NOT_FOUND,
                "unknown_tunnel",
                "Not found: no open tunnel with this ID (the phone has not "
                "connected yet, or the tunnel expired); scan the QR code again.",
            )
        if tunnel.desktop is not None:
            return self._refuse(
                conn,
                http.HTTPStatus.CONFLICT,
                "desktop_already_joined",
                "Conflict: another desktop already joined this tunnel; start a new sign-in.",
            )
        return None

    def process_response(
        self, conn: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        """Register the tunnel side once websockets has agreed to the upgrade.

        Runs right after `process_request` with no await in between, so the checks made
        there still hold.
        """
        cable = cast("CableConnection", conn)
        route = cable.route
        if route is None:
            return None
        if response.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:
            self.metrics.reject("bad_handshake")
            self._log_refusal(
                logging.INFO,
                "rejected",
                reason="bad_handshake",
                status=response.status_code,
                client=cable.client_ip,
            )
            return None
        loop = asyncio.get_running_loop()
        config = self.config
        if isinstance(route, NewTunnel):
            tunnel = Tunnel(route.tunnel_id, conn, loop.time())
            self.tunnels[route.tunnel_id] = tunnel
            tunnel.owner = owner = cable.ip_key or ""
            self.tunnels_per_ip[owner] = self.tunnels_per_ip.get(owner, 0) + 1
            self.idle.clear()
            cable.tunnel = tunnel
            if config.join_timeout < config.ttl:
                self._arm(tunnel, config.join_timeout, "join_timeout")
            else:
                self._arm(tunnel, config.ttl, "ttl")
            self.metrics.created.inc()
            response.headers[ROUTING_ID_HEADER] = config.routing_id
            log_event(
                logging.DEBUG,
                "tunnel_opened",
                tunnel=short_id(route.tunnel_id),
                client=cable.client_ip,
            )
        else:
            tunnel = self.tunnels[route.tunnel_id]
            tunnel.desktop = conn
            cable.tunnel = tunnel
            self._arm(tunnel, tunnel.started + config.ttl - loop.time(), "ttl")
            log_event(
                logging.DEBUG,
                "desktop_joined",
                tunnel=short_id(route.tunnel_id),
                client=cable.client_ip,
            )
        return None

    # -- ending tunnels --------------------------------------------------------------------

    def _arm(self, tunnel: Tunnel, delay: float, label: str) -> None:
        if tunnel.timer is not None:
            tunnel.timer.cancel()
        loop = asyncio.get_running_loop()
        tunnel.timer = loop.call_later(max(delay, 0.0), self._expire, tunnel, label)

    def _expire(self, tunnel: Tunnel, label: str) -> None:
        tunnel.timer = None
        if label == "join_timeout":
            reason = f"no desktop joined within {self.config.join_timeout:g} s; scan again"
        else:
            reason = f"tunnel lifetime of {self.config.ttl:g} s is over; start again"
        self.end(tunnel, Ending(1001, reason, label))

    def end(
        self, tunnel: Tunnel, ending: Ending, initiator: ServerConnection | None = None
    ) -> None:
        """Close every open side of `tunnel` with `ending` (the first ending wins).

        `initiator` is the connection whose own handler closes it (or that is already gone).
        """
        if tunnel.ending is not None:
            return
        tunnel.ending = ending
        tunnel.held = None  # nobody will read them now
        if tunnel.timer is not None:
            tunnel.timer.cancel()
            tunnel.timer = None
        if tunnel.drained is not None:
            tunnel.drained.set()
        for side in (tunnel.phone, tunnel.desktop):
            if side is not None and side is not initiator and side.state is State.OPEN:
                self.spawn(side.close(ending.code, ending.reason))
        level = logging.INFO if ending.label in _LIMIT_LABELS else logging.DEBUG
        log_event(
            level,
            "tunnel_ending",
            tunnel=short_id(tunnel.tunnel_id),
            reason=ending.label,
            code=ending.code,
        )

    def _finish(self, tunnel: Tunnel) -> None:
        if self.tunnels.get(tunnel.tunnel_id) is tunnel:
            del self.tunnels[tunnel.tunnel_id]
            owned = self.tunnels_per_ip[tunnel.owner] - 1
            if owned:
                self.tunnels_per_ip[tunnel.owner] = owned
            else:
                del self.tunnels_per_ip[tunnel.owner]
        done = self._done
        done[0] += tunnel.up.messages
        done[1] += tunnel.down.messages
        done[2] += tunnel.up.bytes
        done[3] += tunnel.down.bytes
        duration = asyncio.get_running_loop().time() - tunnel.started
        label = tunnel.ending.label if tunnel.ending is not None else "disconnected"
        self.metrics.completed.labels(label).inc()
        self.metrics.duration.observe(duration)
        log_event(
            logging.DEBUG,
            "tunnel_closed",
            tunnel=short_id(tunnel.tunnel_id),
            reason=label,
            duration=duration,
            up=tunnel.up.messages,
            down=tunnel.down.messages,
        )
        if not self.tunnels:
            self.idle.set()

    def relay_totals(self) -> RelayTotals:
        up_m, down_m, up_b, down_b = self._done
        for t in self.tunnels.values():
            up_m += t.up.messages
            down_m += t.down.messages
            up_b += t.up.bytes
            down_b += t.down.bytes
        return up_m, down_m, up_b, down_b

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in a task the hub keeps (and awaits at shutdown)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def shutdown_waiting(self) -> None:
        """Stop admitting tunnels and end those no desktop can join any more."""
        self.stopping = True
        for tunnel in list(self.tunnels.values()):
            if tunnel.desktop is None:
                self.end(
                    tunnel,
                    Ending(1001, "the tunnel server is shutting down; try again", "shutdown"),
                )

    def shutdown_all(self) -> None:
        """End every tunnel and drop connections still in their HTTP handshake."""
        self.stopping = True
        for tunnel in list(self.tunnels.values()):
            self.end(
                tunnel, Ending(1001, "the tunnel server is shutting down; try again", "shutdown")
            )
        for conn in list(self.connections):
            if conn.state is State.CONNECTING:
                conn.transport.abort()
