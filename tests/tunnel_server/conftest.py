"""Fixtures: real tunnel servers on loopback (port 0)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.tunnel_server.servers import ServerFactory
from tunnel_server import ServerConfig, TunnelServer


@pytest.fixture
async def make_server() -> AsyncIterator[ServerFactory]:
    """Start servers with config overrides; every one is stopped (grace 0) afterwards."""
    servers: list[TunnelServer] = []

    async def make(**overrides: Any) -> TunnelServer:
        overrides.setdefault("routing_id", "0A0B0C")
        server = TunnelServer(ServerConfig(port=0, **overrides))
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop(grace=0)


@pytest.fixture
async def server(make_server: ServerFactory) -> TunnelServer:
    return await make_server()
