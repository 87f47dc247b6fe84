"""Limits: TTL, join timeout, per-address and total caps, slow handshakes, Origin, methods."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import InvalidStatus

from tests.tunnel_server.servers import ServerFactory
from tunnel_server import TunnelServer
from tunnel_server.testing import (
    cable_connect,
    closed_by_server,
    connect_url,
    has_metric,
    http_request,
    new_url,
    wait_until,
    wait_until_idle,
)

TUNNEL = "00112233445566778899AABBCCDDEEFF"


async def test_ttl_closes_a_joined_tunnel_with_1001(make_server: ServerFactory) -> None:
    server = await make_server(ttl=0.8)
    phone = await cable_connect(new_url(server.url, TUNNEL))
    desktop = await cable_connect(connect_url(server.url, server.routing_id, TUNNEL))
    await desktop.send(b"in time")
    assert await phone.recv() == b"in time"
    for ws in (phone, desktop):
        code, reason = await closed_by_server(ws)
        assert code == 1001
        assert "lifetime of 0.8 s is over" in reason
    await wait_until_idle(server)
    assert has_metric(server, 'cable_tunnels_completed_total{reason="ttl"} 1.0')


async def test_join_timeout_closes_the_phone_and_forgets_the_tunnel(
    make_server: ServerFactory,
) -> None:
    server = await make_server(join_timeout=0.2)
    phone = await cable_connect(new_url(server.url, TUNNEL))
    code, reason = await closed_by_server(phone)
    assert code == 1001
    assert "no desktop joined within 0.2 s" in reason
    await wait_until_idle(server)
    with pytest.raises(InvalidStatus) as info:
        await cable_connect(connect_url(server.url, server.routing_id, TUNNEL))
    assert info.value.response.status_code == 404
    assert has_metric(server, 'cable_tunnels_completed_total{reason="join_timeout"} 1.0')


async def test_per_ip_limit_drops_extra_connections(make_server: ServerFactory) -> None:
    server = await make_server(max_connections_per_ip=2)
    first = await cable_connect(new_url(server.url, TUNNEL))
    second = await cable_connect(connect_url(server.url, server.routing_id, TUNNEL))
    reply = await http_request(server.url, "/healthz", headers={}, timeout=2)
    assert reply.status == 0  # dropped at accept, before any HTTP
    assert has_metric(server, 'cable_rejections_total{reason="per_ip_limit"} 1.0')
    await second.send(b"unaffected")
    assert await first.recv() == b"unaffected"
    await second.close()
    await wait_until(lambda: server.open_connections() == 1)
    reply = await http_request(server.url, "/healthz", headers={})
    assert reply.status == 200
    await first.close()
    await wait_until_idle(server)


async def test_per_ip_limit_counts_each_address_apart(make_server: ServerFactory) -> None:
    server = await make_server(max_connections_per_ip=1)
    first = await cable_connect(new_url(server.url, TUNNEL))
    other = await cable_connect(
        connect_url(server.url, server.routing_id, TUNNEL), local_addr=("127.0.0.2", 0)
    )
    assert server.hub.per_ip == {"127.0.0.1": 1, "127.0.0.2": 1}
    await other.send(b"from another address")
    assert await first.recv() == b"from another address"
    await other.close()
    await first.wait_closed()
    await wait_until_idle(server)


async def test_max_tunnels_answers_503(make_server: ServerFactory) -> None:
    server = await make_server(max_tunnels=2)
    phones = [await cable_connect(new_url(server.url, f"{i:032X}")) for i in range(2)]
    with pytest.raises(InvalidStatus) as info:
        await cable_connect(new_url(server.url, f"{9:032X}"))
    assert info.value.response.status_code == 503
    assert b"try again" in info.value.response.body
    assert has_metric(server, 'cable_rejections_total{reason="max_tunnels"} 1.0')
    await phones[0].close()
    await wait_until(lambda: server.active_tunnels() == 1)
    phones[0] = await cable_connect(new_url(server.url, f"{9:032X}"))
    for phone in phones:
        await phone.close()
    await wait_until_idle(server)


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /cable/new/", b"\x16\x03\x01\x02\x00garbage", b"NOT HTTP AT ALL\r\n\r\n"],
    ids=["idle", "partial", "tls-on-plain", "garbage"],
)
async def test_unfinished_handshakes_are_dropped(make_server: ServerFactory, sent: bytes) -> None:
    server = await make_server(handshake_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(sent)
    async with asyncio.timeout(3):
        data = await reader.read()  # returns b"" when the server hangs up
    assert b"101" not in data
    writer.close()
    await wait_until_idle(server)
    assert has_metric(server, 'cable_rejections_total{reason="incomplete_handshake"} 1.0')


async def test_origin_allow_list(make_server: ServerFactory) -> None:
    server = await make_server(allow_origins=("wss://Cable.Example.com",))
    ok = await cable_connect(new_url(server.url, TUNNEL), origin="wss://cable.example.com")
    for origin in ("wss://evil.example.com", None):
        with pytest.raises(InvalidStatus) as info:
            await cable_connect(connect_url(server.url, server.routing_id, TUNNEL), origin=origin)
        assert info.value.response.status_code == 403
        assert b"allowed origin" in info.value.response.body
    assert has_metric(server, 'cable_rejections_total{reason="origin_not_allowed"} 2.0')
    await ok.close()
    await wait_until_idle(server)


@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD", "DELETE", "OPTIONS"])
async def test_only_get_upgrades(server: TunnelServer, method: str) -> None:
    reply = await http_request(server.url, f"/cable/new/{TUNNEL}", method=method, timeout=2)
    assert reply.status != 101
    await wait_until_idle(server)


async def test_plain_get_on_a_tunnel_path_creates_nothing(server: TunnelServer) -> None:
    reply = await http_request(server.url, f"/cable/new/{TUNNEL}", headers={})
    assert reply.status == 426
    await wait_until_idle(server)
    assert has_metric(server, "cable_tunnels_created_total 0.0")
