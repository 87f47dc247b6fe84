"""Issue 10 hardening: limits that hold during TLS, a global cap, IPv6 prefixes, tunnels per
address, nothing buffered after a tunnel ends, and /metrics only for allowed networks."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import ssl
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.tunnel_server.servers import ServerFactory, tls_server
from tunnel_server import ServerConfig, ServerConfigError
from tunnel_server.addresses import client_key, parse_address
from tunnel_server.config import default_max_connections
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

TUNNEL = "C0FFEE00C0FFEE00C0FFEE00C0FFEE00"


async def test_per_ip_limit_counts_idle_connections_before_tls(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server, cert = await tls_server(make_server, tmp_path, max_connections_per_ip=2)
    idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    await wait_until(lambda: server.hub.per_ip == {"127.0.0.1": 2}, what="2 idle counted")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # dropped without a ClientHello
    assert has_metric(server, 'cable_rejections_total{reason="per_ip_limit"} 1.0')
    writer.close()
    for _, idle_writer in idle:
        idle_writer.close()
    await wait_until(lambda: not server.hub.per_ip, what="idle connections released")
    client_tls = ssl.create_default_context(cafile=str(cert))
    phone = await cable_connect(new_url(server.url, TUNNEL), ssl=client_tls)
    desktop = await cable_connect(
        connect_url(server.url, server.routing_id, TUNNEL), ssl=client_tls
    )
    await phone.send(b"TLS after admission")
    assert await desktop.recv() == b"TLS after admission"
    await desktop.close()
    await phone.wait_closed()
    await wait_until_idle(server)


async def test_an_idle_tls_connection_is_dropped_after_the_handshake_timeout(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server, _ = await tls_server(make_server, tmp_path, handshake_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    await wait_until_idle(server)
    assert has_metric(server, 'cable_rejections_total{reason="incomplete_handshake"} 1.0')


async def test_global_connection_cap(make_server: ServerFactory) -> None:
    server = await make_server(max_connections=2)
    phone = await cable_connect(new_url(server.url, TUNNEL))
    other = await cable_connect(
        connect_url(server.url, server.routing_id, TUNNEL), local_addr=("127.0.0.2", 0)
    )
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, local_addr=("127.0.0.3", 0)
    )
    assert await asyncio.wait_for(reader.read(), 2) == b""  # a fresh address, still dropped
    writer.close()
    assert has_metric(server, 'cable_rejections_total{reason="max_connections"} 1.0')
    await other.send(b"the first two are unaffected")
    assert await phone.recv() == b"the first two are unaffected"
    await other.close()
    await phone.wait_closed()
    await wait_until_idle(server)
    assert (await http_request(server.url, "/healthz", headers={})).status == 200


def test_max_connections_defaults_below_the_open_file_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = 50_000 if soft == resource.RLIM_INFINITY else min(soft - 100, 50_000)
    assert default_max_connections() == expected
    assert ServerConfig().max_connections == expected
    assert ServerConfig(max_connections=7).max_connections == 7
    with pytest.raises(ServerConfigError, match="--max-connections must be greater than 0"):
        ServerConfig(max_connections=0)


async def test_start_warns_when_the_open_file_limit_cannot_hold_max_tunnels(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tunnel_server")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    await make_server(max_tunnels=soft)  # needs 2 * soft descriptors
    warnings = [r for r in caplog.records if r.getMessage() == "open_file_limit_too_low"]
    assert len(warnings) == 1
    fields = warnings[0].fields  # type: ignore[attr-defined]
    assert fields["open_file_limit"] == soft
    assert fields["needed"] >= 2 * soft
    caplog.clear()
    await make_server(max_tunnels=10)
    assert not [r for r in caplog.records if r.getMessage() == "open_file_limit_too_low"]


@pytest.mark.parametrize(
    ("address", "prefix", "key"),
    [
        ("192.0.2.7", 64, "192.0.2.7"),
        ("::ffff:192.0.2.7", 64, "192.0.2.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2:ffff::1", 128, "2001:db8:1:2:ffff::1/128"),
        ("fe80::1%eth0", 64, "fe80::/64"),
    ],
)
def test_ipv6_clients_are_counted_by_prefix(address: str, prefix: int, key: str) -> None:
    assert client_key(parse_address(address), prefix) == key


def test_an_unparsable_peer_is_counted_as_one() -> None:
    assert client_key(parse_address("not an address"), 64) == "unknown"


async def test_ipv6_loopback_is_limited(make_server: ServerFactory) -> None:
    server = await make_server(host="::1", max_connections_per_ip=1, ipv6_prefix=64)
    phone = await cable_connect(new_url(server.url, TUNNEL))
    assert server.hub.per_ip == {"::/64": 1}
    reply = await http_request(server.url, "/healthz", headers={}, timeout=2)
    assert reply.status == 0
    assert has_metric(server, 'cable_rejections_total{reason="per_ip_limit"} 1.0')
    await phone.close()
    await wait_until_idle(server)


@pytest.mark.parametrize("bits", [0, 129])
def test_ipv6_prefix_must_be_a_prefix_length(bits: int) -> None:
    with pytest.raises(ServerConfigError, match=r"--ipv6-prefix must be 1\.\.128"):
        ServerConfig(ipv6_prefix=bits)


async def test_one_address_cannot_fill_the_tunnel_table(make_server: ServerFactory) -> None:
    server = await make_server(max_tunnels_per_ip=2, max_tunnels=10)
    phones = [await cable_connect(new_url(server.url, f"{i:032X}")) for i in range(2)]
    with pytest.raises(InvalidStatus) as info:
        await cable_connect(new_url(server.url, f"{7:032X}"))
    assert info.value.response.status_code == 429
    assert has_metric(server, 'cable_rejections_total{reason="tunnels_per_ip"} 1.0')
    other = await cable_connect(new_url(server.url, f"{8:032X}"), local_addr=("127.0.0.2", 0))
    assert server.hub.tunnels_per_ip == {"127.0.0.1": 2, "127.0.0.2": 1}
    desktop = await cable_connect(connect_url(server.url, server.routing_id, f"{0:032X}"))
    await desktop.send(b"joining is not opening")
    assert await phones[0].recv() == b"joining is not opening"
    await desktop.close()
    await phones[0].wait_closed()
    await wait_until(lambda: server.hub.tunnels_per_ip.get("127.0.0.1") == 1)
    phones[0] = await cable_connect(new_url(server.url, f"{7:032X}"))  # room again
    for ws in (*phones, other):
        await ws.close()
    await wait_until_idle(server)
    assert server.hub.tunnels_per_ip == {}


async def test_nothing_is_held_once_a_tunnel_has_ended(make_server: ServerFactory) -> None:
    server = await make_server(max_buffered=2, join_timeout=0.5, close_timeout=0.5)
    phone = await cable_connect(new_url(server.url, TUNNEL))
    tunnel = next(iter(server.hub.tunnels.values()))
    for i in range(200):  # far more than held: the rest waits in websockets and TCP buffers
        await phone.send(b"%d" % i + bytes(1000))
    code, _ = await closed_by_server(phone)
    assert code == 1001
    await wait_until_idle(server)
    assert tunnel.held is None
    assert tunnel.up.messages <= 2 + 4 + 1  # held, websockets' queue, one in hand


async def test_metrics_only_for_allowed_networks(make_server: ServerFactory) -> None:
    server = await make_server(metrics_allow=("127.0.0.2/32", "2001:db8::/32"))
    refused = await http_request(server.url, "/metrics", headers={})
    assert refused.status == 404
    assert (await http_request(server.url, "/healthz", headers={})).status == 200
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, local_addr=("127.0.0.2", 0)
    )
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 ")
    writer.close()
    assert has_metric(server, 'cable_rejections_total{reason="metrics_not_allowed"} 1.0')


def test_metrics_allow_defaults_to_loopback_and_checks_cidrs() -> None:
    networks = ServerConfig().metrics_networks
    assert networks == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    with pytest.raises(ServerConfigError, match="--metrics-allow"):
        ServerConfig(metrics_allow=("10.0.0.0/8", "bogus"))
    with pytest.raises(ServerConfigError, match="--trusted-proxies"):
        ServerConfig(trusted_proxies=("300.1.1.1",))
    with pytest.raises(ServerConfigError, match=r"--trusted-proxies 127\.0\.0\.1/32"):
        ServerConfig(proxy_protocol=True, trusted_proxies=())
    assert ServerConfig(metrics_allow=()).metrics_networks == ()  # /metrics off for everyone
    with pytest.raises(ServerConfigError, match="terminate TLS at the proxy"):
        ServerConfig(proxy_protocol=True, tls_cert="c.pem", tls_key="k.pem")
