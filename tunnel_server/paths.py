"""The strict request-target parser: anything but the exact caBLE paths is a 404.

Pure and synchronous, so every odd path is a unit test. The request target is matched as sent
(websockets does not decode it), which is why percent-encoding, dot segments, `//`, queries and
fragments can never sneak a different tunnel ID past the match.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from hybrid.protocol.constants import (
    CONNECT_PATH,
    NEW_TUNNEL_PATH,
    ROUTING_ID_SIZE,
    TUNNEL_ID_SIZE,
)


class Static(enum.Enum):
    """Plain HTTP endpoints next to the tunnels."""

    HEALTHZ = "/healthz"
    METRICS = "/metrics"


@dataclass(frozen=True, slots=True)
class NewTunnel:
    """`/cable/new/{tunnel}`: the phone opens a tunnel."""

    tunnel_id: bytes


@dataclass(frozen=True, slots=True)
class ConnectTunnel:
    """`/cable/connect/{routing}/{tunnel}`: the desktop joins a tunnel."""

    routing_id: bytes
    tunnel_id: bytes


Route = NewTunnel | ConnectTunnel | Static

_HEX = "[0-9A-Fa-f]"
_NEW = re.compile(re.escape(NEW_TUNNEL_PATH) + f"({_HEX}{{{2 * TUNNEL_ID_SIZE}}})", re.ASCII)
_CONNECT = re.compile(
    re.escape(CONNECT_PATH) + f"({_HEX}{{{2 * ROUTING_ID_SIZE}}})/({_HEX}{{{2 * TUNNEL_ID_SIZE}}})",
    re.ASCII,
)
_STATIC = {s.value: s for s in Static}


def parse_path(target: str) -> Route | None:
    """The route for an HTTP request target, or None when it must be answered with 404."""
    static = _STATIC.get(target)
    if static is not None:
        return static
    match = _NEW.fullmatch(target)
    if match is not None:
        return NewTunnel(bytes.fromhex(match[1]))
    match = _CONNECT.fullmatch(target)
    if match is not None:
        return ConnectTunnel(bytes.fromhex(match[1]), bytes.fromhex(match[2]))
    return None


def short_id(tunnel_id: bytes) -> str:
    """A log-safe handle for a tunnel: enough to correlate lines, too little to join it."""
    return tunnel_id[:2].hex().upper() + ".."
