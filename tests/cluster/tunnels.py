"""Phone and desktop pairs opened through a cluster, the way the hybrid clients do."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable

from websockets.asyncio.client import ClientConnection

from hybrid.protocol.constants import ROUTING_ID_HEADER
from tunnel_server.testing import cable_connect, connect_url, new_url

Pair = tuple[ClientConnection, ClientConnection, str]


async def open_pair(url: str, tunnel: str | None = None, **kwargs: object) -> Pair:
    """A phone and a desktop joined through the cluster; returns them and the node's RID."""
    tunnel = tunnel or secrets.token_hex(16)
    phone = await cable_connect(new_url(url, tunnel), **kwargs)
    assert phone.response is not None
    routing_id = phone.response.headers[ROUTING_ID_HEADER]
    desktop = await cable_connect(connect_url(url, routing_id, tunnel), **kwargs)
    return phone, desktop, routing_id


async def relays(phone: ClientConnection, desktop: ClientConnection, token: bytes) -> None:
    await desktop.send(token)
    assert await phone.recv() == token
    await phone.send(token[::-1])
    assert await desktop.recv() == token[::-1]


async def close_pairs(pairs: Iterable[Pair]) -> None:
    """Close both ends of every pair (already closed ones too), so no address cap fills up."""
    await asyncio.gather(*(ws.close() for phone, desktop, _ in pairs for ws in (phone, desktop)))
