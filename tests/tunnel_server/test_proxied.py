"""A node behind a proxy (`--proxy-protocol`): real sockets that speak PROXY v2 first."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection

from tests.tunnel_server.servers import ServerFactory
from tunnel_server import TunnelServer
from tunnel_server.proxy_protocol import SIGNATURE, build_header
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

TUNNEL = "5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A"
CLIENT = ("203.0.113.7", 40000)


def header(server: TunnelServer, source: tuple[str, int] | None = CLIENT) -> bytes:
    """The header a proxy on loopback sends for `source` (None: a LOCAL health check)."""
    if source is None:
        return build_header(None, None)
    destination = ("::1", server.port) if ":" in source[0] else ("127.0.0.1", server.port)
    return build_header(source, destination)


async def via_proxy(url: str, prefix: bytes) -> ClientConnection:
    """A WebSocket client whose connection starts with `prefix`, as it does behind HAProxy."""
    port = urlsplit(url).port
    assert port is not None
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(prefix)
    sock.setblocking(False)
    return await cable_connect(url, sock=sock)


async def test_the_header_source_is_the_client(make_server: ServerFactory) -> None:
    server = await make_server(proxy_protocol=True)
    phone = await via_proxy(new_url(server.url, TUNNEL), header(server))
    desktop = await via_proxy(
        connect_url(server.url, server.routing_id, TUNNEL), header(server, ("2001:db8::5", 1))
    )
    assert server.hub.per_ip == {"203.0.113.7": 1, "2001:db8::/64": 1}
    assert server.hub.tunnels_per_ip == {"203.0.113.7": 1}
    await desktop.send(b"through the proxy")
    assert await phone.recv() == b"through the proxy"
    await phone.close()
    await desktop.wait_closed()
    await wait_until_idle(server)


async def test_bytes_sent_with_the_header_are_kept(make_server: ServerFactory) -> None:
    server = await make_server(proxy_protocol=True)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(header(server) + request)  # one segment, as HAProxy sends it
    data = await asyncio.wait_for(reader.read(), 5)
    assert data.startswith(b"HTTP/1.1 200 ")
    writer.close()
    await wait_until_idle(server)


async def test_a_header_in_single_bytes_is_reassembled(make_server: ServerFactory) -> None:
    server = await make_server(proxy_protocol=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for byte in header(server):
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.001)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200 ")
    writer.close()
    await wait_until_idle(server)


async def test_per_ip_limits_count_the_forwarded_client(make_server: ServerFactory) -> None:
    server = await make_server(proxy_protocol=True, max_connections_per_ip=1)
    first = await via_proxy(new_url(server.url, TUNNEL), header(server))
    again = await http_request(server.url, "/healthz", headers={}, prefix=header(server))
    assert again.status == 0  # same client behind the same proxy: over its limit
    assert has_metric(server, 'cable_rejections_total{reason="per_ip_limit"} 1.0')
    other = header(server, ("203.0.113.8", 1))
    desktop = await via_proxy(connect_url(server.url, server.routing_id, TUNNEL), other)
    await desktop.send(b"another client")
    assert await first.recv() == b"another client"
    await desktop.close()
    await first.wait_closed()
    await wait_until_idle(server)


async def test_local_health_checks_and_metrics_use_the_proxys_address(
    make_server: ServerFactory,
) -> None:
    server = await make_server(proxy_protocol=True)
    health = await http_request(server.url, "/healthz", headers={}, prefix=header(server, None))
    assert (health.status, health.body) == (200, b"ok\n")
    local = await http_request(server.url, "/metrics", headers={}, prefix=header(server, None))
    assert local.status == 200
    forwarded = await http_request(server.url, "/metrics", headers={}, prefix=header(server))
    assert forwarded.status == 404  # a public client forwarded by a loopback proxy
    assert has_metric(server, 'cable_rejections_total{reason="metrics_not_allowed"} 1.0')
    await wait_until_idle(server)


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        (b"", "proxy_header"),  # plain HTTP, no header
        (b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n", "proxy_header"),
        (SIGNATURE + bytes.fromhex("21 11 0004") + bytes(4), "proxy_header"),
    ],
    ids=["missing", "version-1", "short-address-block"],
)
async def test_bad_or_missing_headers_are_dropped(
    make_server: ServerFactory, prefix: bytes, reason: str
) -> None:
    server = await make_server(proxy_protocol=True)
    reply = await http_request(server.url, "/healthz", headers={}, prefix=prefix, timeout=3)
    assert reply.status == 0
    assert has_metric(server, f'cable_rejections_total{{reason="{reason}"}} 1.0')
    await wait_until_idle(server)


async def test_a_header_that_never_completes_times_out(make_server: ServerFactory) -> None:
    server = await make_server(proxy_protocol=True, handshake_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(header(server)[:20])
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    await wait_until_idle(server)
    assert has_metric(server, 'cable_rejections_total{reason="incomplete_handshake"} 1.0')


async def test_a_truncated_header_then_eof_is_dropped(make_server: ServerFactory) -> None:
    server = await make_server(proxy_protocol=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(header(server)[:20])
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    await wait_until_idle(server)
    assert has_metric(server, 'cable_rejections_total{reason="incomplete_handshake"} 1.0')


async def test_peers_outside_trusted_proxies_are_dropped_at_accept(
    make_server: ServerFactory,
) -> None:
    server = await make_server(proxy_protocol=True, trusted_proxies=("127.0.0.2/32",))
    reply = await http_request(server.url, "/healthz", headers={}, prefix=header(server))
    assert reply.status == 0
    assert has_metric(server, 'cable_rejections_total{reason="untrusted_proxy"} 1.0')
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, local_addr=("127.0.0.2", 0)
    )
    writer.write(header(server, None) + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200 ")
    writer.close()
    await wait_until_idle(server)


async def test_tunnels_behind_the_proxy_end_as_usual(make_server: ServerFactory) -> None:
    server = await make_server(proxy_protocol=True, join_timeout=0.2)
    phone = await via_proxy(new_url(server.url, TUNNEL), header(server))
    code, _ = await closed_by_server(phone)
    assert code == 1001
    await wait_until(lambda: server.active_tunnels() == 0)
    await wait_until_idle(server)
