"""Relaying between a real phone and desktop client, and how tunnels end."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from tests.tunnel_server.servers import ServerFactory
from tunnel_server import TunnelServer
from tunnel_server.testing import (
    cable_connect,
    closed_by_server,
    connect_url,
    new_url,
    wait_until,
    wait_until_idle,
)

TUNNEL = "3EEF97097986413B059EAA2A30D653D4"


async def open_pair(
    server: TunnelServer, tunnel: str = TUNNEL
) -> tuple[ClientConnection, ClientConnection]:
    phone = await cable_connect(new_url(server.url, tunnel))
    desktop = await cable_connect(connect_url(server.url, server.routing_id, tunnel))
    return phone, desktop


async def refused(url: str) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        await cable_connect(url)
    return info.value


async def test_relays_both_ways_in_order(server: TunnelServer) -> None:
    phone, desktop = await open_pair(server)
    assert phone.subprotocol == desktop.subprotocol == "fido.cable"
    assert phone.response is not None
    assert phone.response.headers["X-caBLE-Routing-ID"] == server.routing_id
    handshake = bytes(range(81))
    await desktop.send(handshake)
    assert await phone.recv() == handshake
    replies = [bytes([i]) * (i + 1) for i in range(20)]
    for reply in replies:
        await phone.send(reply)
    assert [await desktop.recv() for _ in replies] == replies
    await desktop.send(b"\x00")
    assert await phone.recv() == b"\x00"
    await desktop.close()
    assert await closed_by_server(phone) == (1000, "the desktop closed the tunnel")
    await wait_until_idle(server)
    metrics = server.hub.metrics.render().decode()
    assert 'cable_relayed_messages_total{direction="phone_to_desktop"} 20.0' in metrics
    assert 'cable_relayed_messages_total{direction="desktop_to_phone"} 2.0' in metrics
    assert 'cable_relayed_bytes_total{direction="desktop_to_phone"} 82.0' in metrics
    assert 'cable_tunnels_completed_total{reason="normal"} 1.0' in metrics


async def test_relayed_sockets_do_not_wait_for_nagle(server: TunnelServer) -> None:
    """Records are small and come in bursts: every accepted socket must have TCP_NODELAY."""
    phone, desktop = await open_pair(server)
    sockets = [c.transport.get_extra_info("socket") for c in server.hub.connections]
    assert len(sockets) == 2
    assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)
    await phone.close()
    await desktop.close()


async def test_lowercase_and_uppercase_ids_meet(server: TunnelServer) -> None:
    phone = await cable_connect(new_url(server.url, TUNNEL.lower()))
    desktop = await cable_connect(
        connect_url(server.url, server.routing_id.lower(), TUNNEL.upper())
    )
    await desktop.send(b"ping")
    assert await phone.recv() == b"ping"
    await phone.close()
    await desktop.close()
    await wait_until_idle(server)


async def test_phone_messages_before_the_desktop_are_held_in_order(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_buffered=4)
    phone = await cable_connect(new_url(server.url, TUNNEL))
    early = [f"early {i}".encode() for i in range(10)]  # more than the hold: back-pressure
    for message in early:
        await phone.send(message)
    await wait_until(lambda: server.hub.tunnels[bytes.fromhex(TUNNEL)].held is not None)
    desktop = await cable_connect(connect_url(server.url, server.routing_id, TUNNEL))
    await phone.send(b"late")
    assert [await desktop.recv() for _ in range(11)] == [*early, b"late"]
    await desktop.send(b"answer")
    assert await phone.recv() == b"answer"
    await phone.close()
    assert await closed_by_server(desktop) == (1000, "the phone closed the tunnel")
    await wait_until_idle(server)


async def test_second_new_for_a_live_tunnel_is_409(server: TunnelServer) -> None:
    phone = await cable_connect(new_url(server.url, TUNNEL))
    error = await refused(new_url(server.url, TUNNEL.lower()))
    assert error.response.status_code == 409
    assert b"new QR code" in error.response.body
    await phone.close()
    await wait_until_idle(server)


async def test_second_desktop_is_409(server: TunnelServer) -> None:
    phone, desktop = await open_pair(server)
    error = await refused(connect_url(server.url, server.routing_id, TUNNEL))
    assert error.response.status_code == 409
    await desktop.send(b"still works")
    assert await phone.recv() == b"still works"
    await phone.close()
    await desktop.close()
    await wait_until_idle(server)


async def test_unknown_tunnel_and_foreign_routing_id_are_404(server: TunnelServer) -> None:
    error = await refused(connect_url(server.url, server.routing_id, TUNNEL))
    assert error.response.status_code == 404
    assert b"scan the QR code again" in error.response.body
    phone = await cable_connect(new_url(server.url, TUNNEL))
    error = await refused(connect_url(server.url, "FFFFFF", TUNNEL))
    assert error.response.status_code == 404
    assert b"another tunnel server" in error.response.body
    await phone.close()
    await wait_until_idle(server)
    error = await refused(connect_url(server.url, server.routing_id, TUNNEL))
    assert error.response.status_code == 404


async def test_missing_subprotocol_is_400_with_advice(server: TunnelServer) -> None:
    error = await refused_with(new_url(server.url, TUNNEL), subprotocols=None)
    assert error.response.status_code == 400
    assert b"fido.cable" in error.response.body
    assert server.active_tunnels() == 0
    assert 'reason="bad_handshake"} 1.0' in server.hub.metrics.render().decode()


async def refused_with(url: str, **kwargs: object) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        await cable_connect(url, **kwargs)
    return info.value


@pytest.mark.parametrize("sender", ["phone", "desktop"])
async def test_oversize_message_closes_both_sides_with_1009(
    make_server: ServerFactory, sender: str
) -> None:
    server = await make_server(max_message_size=1000)
    phone, desktop = await open_pair(server)
    src, dst = (phone, desktop) if sender == "phone" else (desktop, phone)
    await src.send(b"x" * 1000)  # exactly the limit is fine
    assert len(await dst.recv()) == 1000
    await src.send(b"x" * 1001)
    code, reason = await closed_by_server(dst)
    assert (code, reason) == (1009, f"the {sender} sent a message over the size limit")
    assert (await closed_by_server(src))[0] == 1009
    await wait_until_idle(server)
    metrics = server.hub.metrics.render().decode()
    assert 'cable_tunnels_completed_total{reason="message_too_big"} 1.0' in metrics


@pytest.mark.parametrize("sender", ["phone", "desktop"])
async def test_text_frame_closes_both_sides_with_1003(server: TunnelServer, sender: str) -> None:
    phone, desktop = await open_pair(server)
    src, dst = (phone, desktop) if sender == "phone" else (desktop, phone)
    await src.send("hello")
    for ws in (src, dst):
        code, reason = await closed_by_server(ws)
        assert code == 1003
        assert "send binary" in reason
    await wait_until_idle(server)


async def test_message_limit_closes_both_sides_with_1008(make_server: ServerFactory) -> None:
    server = await make_server(max_messages=3)
    phone, desktop = await open_pair(server)
    for i in range(3):
        await desktop.send(bytes([i]))
    assert [await phone.recv() for _ in range(3)] == [b"\x00", b"\x01", b"\x02"]
    for i in range(3):  # the limit is per side
        await phone.send(bytes([i]))
        assert await desktop.recv() == bytes([i])
    await desktop.send(b"one too many")
    for ws in (phone, desktop):
        code, reason = await closed_by_server(ws)
        assert (code, reason) == (1008, "more than 3 messages; start again")
    await wait_until_idle(server)


async def test_close_code_of_one_side_reaches_the_other(server: TunnelServer) -> None:
    phone, desktop = await open_pair(server)
    await phone.close(4000, "done")
    assert await closed_by_server(desktop) == (4000, "the phone closed the tunnel")
    await wait_until_idle(server)


@pytest.mark.parametrize("dropped", ["phone", "desktop"])
async def test_abrupt_disconnect_closes_the_other_side(server: TunnelServer, dropped: str) -> None:
    phone, desktop = await open_pair(server)
    await desktop.send(b"hi")
    assert await phone.recv() == b"hi"
    gone, left = (phone, desktop) if dropped == "phone" else (desktop, phone)
    gone.transport.abort()
    assert await closed_by_server(left) == (1001, f"the {dropped} disconnected")
    await wait_until_idle(server)
    metrics = server.hub.metrics.render().decode()
    assert 'cable_tunnels_completed_total{reason="disconnected"} 1.0' in metrics


async def test_phone_leaving_before_the_desktop_frees_the_tunnel(server: TunnelServer) -> None:
    phone = await cable_connect(new_url(server.url, TUNNEL))
    await phone.send(b"held")
    phone.transport.abort()
    await wait_until_idle(server)
    error = await refused(connect_url(server.url, server.routing_id, TUNNEL))
    assert error.response.status_code == 404
    again = await cable_connect(new_url(server.url, TUNNEL))  # the ID is free again
    await again.close()
    await wait_until_idle(server)


async def test_a_few_hundred_concurrent_tunnels(make_server: ServerFactory) -> None:
    count = 300
    server = await make_server(max_tunnels_per_ip=count)  # all phones share 127.0.0.1

    async def one(i: int) -> None:
        tunnel = f"{i:032X}"
        phone = await cable_connect(new_url(server.url, tunnel))
        desktop = await cable_connect(connect_url(server.url, server.routing_id, tunnel))
        await desktop.send(b"d%d" % i)
        assert await phone.recv() == b"d%d" % i
        for j in range(5):
            await phone.send(b"p%d-%d" % (i, j))
        assert [await desktop.recv() for _ in range(5)] == [b"p%d-%d" % (i, j) for j in range(5)]
        await desktop.close()
        await phone.wait_closed()
        assert phone.close_code == 1000

    await asyncio.gather(*(one(i) for i in range(count)))
    await wait_until_idle(server)
    metrics = server.hub.metrics.render().decode()
    assert f"cable_tunnels_created_total {count}.0" in metrics
    assert f'cable_relayed_messages_total{{direction="phone_to_desktop"}} {5 * count}.0' in metrics


async def test_memory_returns_once_load_is_gone(server: TunnelServer) -> None:
    """Python-level allocations come back to their level: nothing per tunnel is kept."""
    count = 100

    async def one(i: int) -> None:
        phone, desktop = await open_pair(server, f"{i:032X}")
        await phone.send(b"x" * 100)
        assert await desktop.recv() == b"x" * 100
        await desktop.close()
        await phone.wait_closed()

    async def load() -> int:
        await asyncio.gather(*(one(i) for i in range(count)))
        await wait_until_idle(server)
        gc.collect()
        return sys.getallocatedblocks()

    await load()  # warms caches and free lists
    first = await load()
    second = await load()
    assert second - first < count, (first, second)  # a leaked tunnel is dozens of objects
