"""The production recipe for adding a node: regenerate, reload HAProxy (master-worker, USR2).

Real HAProxy in master-worker mode and two real node processes with PROXY v2 on: a tunnel
opened before the reload keeps relaying through the old worker, and the new node's routing ID
is routed by the new one.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from urllib.parse import urlsplit

from tests.cluster.tunnels import open_pair, relays
from tunnel_server.cluster import Front, Node, render
from tunnel_server.cluster.processes import spawn, stop
from tunnel_server.cluster.runtime import node_states
from tunnel_server.cluster.supervisor import find_haproxy, haproxy_max_connections
from tunnel_server.cluster.testing import free_port
from tunnel_server.testing import closed_by_server, running_server_process, wait_until

PROXIED = ("--proxy-protocol", "--trusted-proxies", "127.0.0.1/32", "--grace", "0.5")


def node(routing_id: str, url: str) -> Node:
    port = urlsplit(url).port
    assert port is not None
    return Node(routing_id, "127.0.0.1", port)


def install(tmp_path: Path, nodes: list[Node], front: Front) -> Path:
    files = render(nodes, front)
    (tmp_path / "rids.map").write_text(files.rid_map)
    config = tmp_path / "haproxy.cfg"
    config.write_text(files.config)
    return config


async def healthy_nodes(socket_path: str) -> set[str]:
    with contextlib.suppress(OSError, TimeoutError):
        return {s.name for s in await node_states(socket_path) if s.healthy}
    return set()


async def test_adding_a_node_by_reload_keeps_live_tunnels(tmp_path: Path) -> None:
    async with (
        running_server_process("--routing-id", "0A0B0C", *PROXIED) as url_a,
        running_server_process("--routing-id", "1D2E3F", *PROXIED) as url_b,
    ):
        first, second = node("0A0B0C", url_a), node("1D2E3F", url_b)
        sock = str(tmp_path / "haproxy.sock")
        port = free_port()
        front = Front(
            map_path=str(tmp_path / "rids.map"),
            port=port,
            proxy_protocol=True,
            max_connections=haproxy_max_connections(),
            stats_socket=sock,
        )
        config = install(tmp_path, [first], front)
        haproxy = await spawn([find_haproxy(None), "-W", "-db", "-f", str(config)])
        try:

            async def sees(names: set[str]) -> bool:
                return await healthy_nodes(sock) == names

            await wait_until(lambda: sees({first.name}), timeout=10, what="node A healthy")
            url = f"ws://127.0.0.1:{port}"
            phone, desktop, rid = await open_pair(url)
            assert rid == first.routing_id
            await relays(phone, desktop, b"before the reload")

            install(tmp_path, [first, second], front)
            both = {first.name, second.name}
            # Reloading is idempotent, and an operator whose new worker does not show up
            # reloads again: on a loaded machine one reload in a dozen full runs was not
            # picked up within 20 s (cause not found; the master's USR2 handling is HAProxy's).
            for attempt in range(3):
                haproxy.send_signal(signal.SIGUSR2)
                try:
                    await wait_until(lambda: sees(both), timeout=10, what="both nodes healthy")
                    break
                except AssertionError:
                    if attempt == 2:
                        raise

            await relays(phone, desktop, b"after the reload")  # the old worker still relays
            # the new worker knows nothing of the old worker's connections: with leastconn,
            # two new tunnels go one to each node
            fresh = [await open_pair(url) for _ in "AB"]
            assert {rid for _, _, rid in fresh} == {first.routing_id, second.routing_id}
            for new_phone, new_desktop, _ in fresh:
                await relays(new_phone, new_desktop, b"on the new worker")
            await relays(phone, desktop, b"and the old tunnel still relays")
            for each_phone, each_desktop, _ in [(phone, desktop, rid), *fresh]:
                await each_desktop.close()
                assert (await closed_by_server(each_phone))[0] == 1000
        finally:
            await stop(haproxy, 10)
