"""Self-hostable FIDO hybrid (caBLE v2) tunnel server.

It pairs a phone (`/cable/new/{tunnel}`) with a desktop (`/cable/connect/{routing}/{tunnel}`)
and relays their encrypted WebSocket messages verbatim; it never holds keys or plaintext.
"""

from __future__ import annotations

from .config import ServerConfig, ServerConfigError
from .server import TunnelServer

__all__ = ["ServerConfig", "ServerConfigError", "TunnelServer"]
