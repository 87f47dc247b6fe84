"""A node behind a real HAProxy (`send-proxy-v2`, `check-send-proxy`): the client's own address
reaches the node's limits, HAProxy's health checks pass, and a draining node goes DOWN."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.tunnel_server.servers import ServerFactory
from tunnel_server.testing import cable_connect, connect_url, has_metric, new_url, wait_until

TUNNEL = "4A9A4A9A4A9A4A9A4A9A4A9A4A9A4A9A"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

CONFIG = """\
global
    stats socket {stats} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout tunnel 30s
frontend cable
    bind 127.0.0.1:{front}
    default_backend nodes
backend nodes
    option httpchk GET /healthz
    http-check expect status 200
    server node 127.0.0.1:{node} send-proxy-v2 check check-send-proxy inter 100ms fall 1 rise 1
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def haproxy(node_port: int, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """Run HAProxy in front of the node; yield its URL and stats socket."""
    front, stats = _free_port(), tmp_path / "stats.sock"
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(stats=stats, front=front, node=node_port))
    with (tmp_path / "haproxy.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            HAPROXY, "-db", "-f", str(config), stdout=log, stderr=log
        )
        try:
            yield f"ws://127.0.0.1:{front}", stats
        finally:
            proc.terminate()
            await proc.wait()


async def server_status(stats: Path) -> str:
    """The node's check status as HAProxy sees it ("UP", "DOWN", ...), or "" before it runs."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(stats))
    except OSError:
        return ""
    writer.write(b"show stat\n")
    data = (await reader.read()).decode()
    writer.close()
    for line in data.splitlines():
        fields = line.split(",")
        if fields[:2] == ["nodes", "node"]:
            return fields[17]  # the "status" column
    return ""


async def status_is(stats: Path, wanted: str) -> bool:
    return (await server_status(stats)).startswith(wanted)


async def test_node_behind_haproxy(make_server: ServerFactory, tmp_path: Path) -> None:
    server = await make_server(
        proxy_protocol=True, trusted_proxies=("127.0.0.1/32",), max_connections_per_ip=1
    )
    async with haproxy(server.port, tmp_path) as (url, stats):
        await wait_until(lambda: status_is(stats, "UP"), 10, "HAProxy to see the node UP")
        phone = await cable_connect(new_url(url, TUNNEL), local_addr=("127.0.0.5", 0))
        desktop = await cable_connect(
            connect_url(url, server.routing_id, TUNNEL), local_addr=("127.0.0.6", 0)
        )
        assert server.hub.per_ip["127.0.0.5"] == server.hub.per_ip["127.0.0.6"] == 1
        with pytest.raises(InvalidStatus) as info:  # the node drops it: HAProxy answers 502
            await cable_connect(new_url(url, "B" * 32), local_addr=("127.0.0.5", 0))
        assert info.value.response.status_code == 502
        assert has_metric(server, 'cable_rejections_total{reason="per_ip_limit"} 1.0')
        await desktop.send(b"through HAProxy")
        assert await phone.recv() == b"through HAProxy"
        stopping = asyncio.create_task(server.stop(grace=10))
        await wait_until(lambda: status_is(stats, "DOWN"), 10, "HAProxy to see the node DOWN")
        await phone.send(b"joined tunnels keep going while draining")
        assert await desktop.recv() == b"joined tunnels keep going while draining"
        await desktop.close()
        await phone.wait_closed()
        await asyncio.wait_for(stopping, 5)
