"""`python -m tunnel_server.cluster` for real: node processes, real HAProxy, loopback clients."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import signal
import socket
import ssl
import sys
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hybrid.protocol.constants import ROUTING_ID_HEADER
from tests.cluster.tunnels import Pair, close_pairs, open_pair, relays
from tests.tunnel_server.servers import self_signed
from tunnel_server.cluster.__main__ import (
    build_parser,
    main,
    proxy_protocol_supported,
    settings_from_args,
)
from tunnel_server.cluster.errors import ClusterError, ClusterReason
from tunnel_server.cluster.supervisor import Cluster, ClusterSettings, check_port_free
from tunnel_server.cluster.testing import (
    ClusterProcess,
    alive,
    free_port,
    running,
    running_cluster,
    start_cluster,
    stop_cluster,
)
from tunnel_server.proxy_protocol import build_header
from tunnel_server.testing import (
    cable_connect,
    closed_by_server,
    connect_url,
    http_request,
    new_url,
    wait_until,
)


async def refused_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as info:
        await cable_connect(url)
    return info.value.response.status_code


async def dropped_without_answer(url: str) -> bool:
    """Whether a tunnel request to `url` is cut before any HTTP status (reset or EOF)."""
    try:
        reply = await http_request(url, f"/cable/new/{secrets.token_hex(16)}")
    except ConnectionError:
        return True
    return reply.status == 0


async def stop_and_check(cluster: ClusterProcess) -> None:
    """SIGTERM: exit code 0 and not one process left behind."""
    assert await stop_cluster(cluster, 30) == 0, cluster.stderr_tail()
    assert alive(cluster.pids) == []


async def test_routes_by_routing_id_and_spreads_new_tunnels() -> None:
    async with running_cluster("--nodes", "3", "--port", str(free_port())) as cluster:
        assert len(cluster.nodes) == 3
        assert len({n.port for n in cluster.nodes.values()}) == 3
        pairs = [await open_pair(cluster.url) for _ in range(6)]
        # leastconn: with every phone still open, each node takes two of the six
        assert sorted(rid for _, _, rid in pairs) == sorted(2 * list(cluster.nodes))
        for i, (phone, desktop, _) in enumerate(pairs):
            await relays(phone, desktop, bytes([i]) * 40)
        unknown = "ABCDEF" if "ABCDEF" not in cluster.nodes else "ABCDEE"
        tunnel = secrets.token_hex(16)
        assert await refused_status(connect_url(cluster.url, unknown, tunnel)) == 404
        assert (await http_request(cluster.url, "/metrics", headers={})).status == 404
        assert (await http_request(cluster.url, "/healthz", headers={})).status == 200
        for phone, desktop, _ in pairs:
            await desktop.close()
            assert (await closed_by_server(phone))[0] == 1000
        await stop_and_check(cluster)


async def test_an_ipv6_cluster_serves_tunnels() -> None:
    """HAProxy on ::1 (the free-port check once tried IPv6 addresses as IPv4)."""
    args = ("--nodes", "1", "--port", str(free_port("::1")), "--host", "::1")
    async with running_cluster(*args) as c:
        assert c.url.startswith("ws://[::1]:")
        assert (await http_request(c.url, "/healthz", headers={})).status == 200
        phone, desktop, rid = await open_pair(c.url)
        assert rid in c.nodes
        await relays(phone, desktop, b"over IPv6")
        await phone.close()
        await desktop.close()
    assert alive(c.pids) == []


def test_the_port_check_sees_ipv6_sockets() -> None:
    taken = socket.create_server(("::1", 0), family=socket.AF_INET6)
    with taken, pytest.raises(ClusterError) as info:
        check_port_free("::1", taken.getsockname()[1])
    assert info.value.reason is ClusterReason.PORT_TAKEN
    check_port_free("::1", free_port("::1"))


async def test_tls_ends_at_haproxy(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = str(free_port())
    args = ("--nodes", "2", "--port", port, "--tls-cert", str(cert), "--tls-key", str(key))
    async with running_cluster(*args) as cluster:
        assert cluster.url == f"wss://127.0.0.1:{port}"
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        phone, desktop, rid = await open_pair(cluster.url, ssl=context)
        assert rid in cluster.nodes
        await relays(phone, desktop, b"over TLS")
        await desktop.close()
        assert (await closed_by_server(phone))[0] == 1000
        await stop_and_check(cluster)


async def test_sigterm_drains_joined_tunnels_within_grace() -> None:
    cluster = await start_cluster("--nodes", "2", "--port", str(free_port()), "--", "--grace", "2")
    try:
        phone, desktop, _ = await open_pair(cluster.url)
        waiting = await cable_connect(new_url(cluster.url, secrets.token_hex(16)))
        cluster.proc.terminate()
        # a phone no desktop can join any more is closed at once ...
        assert await closed_by_server(waiting) == (
            1001,
            "the tunnel server is shutting down; try again",
        )
        # ... HAProxy takes no new connection, and the joined tunnel keeps relaying
        with pytest.raises(OSError):
            await cable_connect(new_url(cluster.url, secrets.token_hex(16)))
        await relays(phone, desktop, b"still relaying")
        code, _ = await closed_by_server(desktop, timeout=10)
        assert code == 1001
    finally:
        await stop_and_check(cluster)


async def test_node_killed_mid_relay_then_restarted() -> None:
    args = ("--nodes", "3", "--port", str(free_port()), "--", "--grace", "0.5")
    async with running_cluster(*args) as cluster:
        pairs = [await open_pair(cluster.url) for _ in range(6)]
        victim = pairs[0][2]
        old = cluster.nodes[victim]
        # the supervisor is frozen so that the node stays dead while we look at HAProxy
        os.kill(cluster.proc.pid, signal.SIGSTOP)
        try:
            os.kill(old.pid, signal.SIGKILL)
            for phone, desktop, rid in pairs:
                if rid == victim:  # HAProxy closes both ends of the dead node's tunnels
                    for ws in (phone, desktop):
                        with pytest.raises(ConnectionClosed):
                            await asyncio.wait_for(ws.recv(), 10)
                else:
                    await relays(phone, desktop, b"unaffected")

            async def victim_down() -> bool:
                return await cluster.node_healthy(victim) is False

            await wait_until(victim_down, timeout=30, what="HAProxy to mark the node down")
            fresh = [await open_pair(cluster.url) for _ in range(4)]
            try:
                for phone, desktop, rid in fresh:
                    assert rid != victim
                    await relays(phone, desktop, b"fresh")
            finally:
                await close_pairs(fresh)
        finally:
            os.kill(cluster.proc.pid, signal.SIGCONT)
        restarted = await cluster.next_node(timeout=30)
        assert (restarted.routing_id, restarted.port) == (old.routing_id, old.port)
        assert restarted.pid != old.pid and alive([old.pid]) == []

        async def victim_up() -> bool:
            return await cluster.node_healthy(victim) is True

        await wait_until(victim_up, timeout=30, what="HAProxy to see the restarted node up")
        # leastconn: the restarted node holds no tunnel, the two others hold two each
        back = await open_pair(cluster.url)
        try:
            assert back[2] == victim
            await relays(back[0], back[1], b"back")
        finally:
            await close_pairs([back, *pairs])
        await stop_and_check(cluster)


async def test_all_nodes_down_is_503_not_a_hang() -> None:
    async with running_cluster("--nodes", "2", "--port", str(free_port())) as cluster:
        some_rid = next(iter(cluster.nodes))
        # the supervisor is frozen so that it cannot restart the nodes while we look
        os.kill(cluster.proc.pid, signal.SIGSTOP)
        try:
            for node in cluster.nodes.values():
                os.kill(node.pid, signal.SIGKILL)

            async def cluster_unhealthy() -> bool:
                return (await http_request(cluster.url, "/healthz", headers={})).status == 503

            await wait_until(cluster_unhealthy, timeout=5, what="HAProxy to see no node")
            async with asyncio.timeout(1):
                assert await refused_status(new_url(cluster.url, secrets.token_hex(16))) == 503
                target = connect_url(cluster.url, some_rid, secrets.token_hex(16))
                assert await refused_status(target) == 503
        finally:
            os.kill(cluster.proc.pid, signal.SIGCONT)
        restarted = {(await cluster.next_node()).routing_id for _ in cluster.nodes}
        assert restarted == set(cluster.nodes)
        await stop_and_check(cluster)


async def test_one_client_address_is_capped_across_all_nodes() -> None:
    async with running_cluster(
        "--nodes", "2", "--port", str(free_port()), "--max-connections-per-ip", "4"
    ) as cluster:
        phones = [
            await cable_connect(new_url(cluster.url, secrets.token_hex(16))) for _ in range(4)
        ]
        assert {p.response.headers[ROUTING_ID_HEADER] for p in phones if p.response} == set(
            cluster.nodes
        )
        # the fifth connection is dropped before any HTTP answer
        assert await dropped_without_answer(cluster.url)
        other = await cable_connect(
            new_url(cluster.url, secrets.token_hex(16)), local_addr=("127.0.0.2", 0)
        )
        await other.close()
        for phone in phones:
            await phone.close()
        await stop_and_check(cluster)


async def test_nodes_see_real_clients_and_drop_proxy_headers_from_others() -> None:
    args = ("--nodes", "1", "--port", str(free_port()), "--", "--max-tunnels-per-ip", "2")
    async with running_cluster(*args) as cluster:
        phones = [await cable_connect(new_url(cluster.url, secrets.token_hex(16))) for _ in "12"]
        # the node counts this client's tunnels (PROXY v2 from HAProxy), not HAProxy's ...
        assert await refused_status(new_url(cluster.url, secrets.token_hex(16))) == 429
        # ... so another client address still gets in through the same HAProxy
        other = await cable_connect(
            new_url(cluster.url, secrets.token_hex(16)), local_addr=("127.0.0.2", 0)
        )
        # a client that goes straight to a node claiming to be a proxy is dropped unanswered
        node = next(iter(cluster.nodes.values()))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", node.port, local_addr=("127.0.0.2", 0)
        )
        forged = build_header(("203.0.113.9", 4000), ("127.0.0.1", node.port))
        writer.write(forged + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:
            answer = b""
        assert answer == b""
        writer.close()
        for ws in (*phones, other):
            await ws.close()
        await stop_and_check(cluster)


async def test_a_killed_supervisor_leaves_nothing_running() -> None:
    cluster = await start_cluster("--nodes", "2", "--port", str(free_port()))
    try:
        os.kill(cluster.proc.pid, signal.SIGKILL)
        await cluster.proc.wait()
        await wait_until(lambda: running(cluster.pids) == [], timeout=10, what="no child left")
    finally:
        await stop_cluster(cluster, 5)
        cluster.stderr.close()


async def test_haproxy_dying_stops_the_cluster_with_its_reason() -> None:
    cluster = await start_cluster("--nodes", "2", "--port", str(free_port()))
    try:
        os.kill(cluster.haproxy_pid, signal.SIGKILL)
        assert await asyncio.wait_for(cluster.proc.wait(), 20) == 1
        assert "error (haproxy_failed)" in cluster.stderr_tail()
        assert alive(cluster.pids) == []
    finally:
        await stop_cluster(cluster, 5)
        cluster.stderr.close()


async def test_a_thousand_tunnels_over_three_nodes_pair_correctly() -> None:
    async with running_cluster(
        "--nodes",
        "3",
        "--port",
        str(free_port()),
        "--max-connections-per-ip",
        "5000",
        "--",
        "--max-connections-per-ip",
        "5000",
        "--max-tunnels-per-ip",
        "5000",
    ) as cluster:
        count, width = 1000, 50
        pairs: list[Pair] = []
        tunnels = [secrets.token_hex(16) for _ in range(count)]
        gate = asyncio.Semaphore(width)

        async def one(tunnel: str) -> None:
            async with gate:
                pairs.append((*(await open_pair(cluster.url, tunnel))[:2], tunnel))

        async with asyncio.timeout(45):
            await asyncio.gather(*(one(t) for t in tunnels))
            # every tunnel open at once; each side must hear exactly its own partner
            await asyncio.gather(*(relays(p, d, bytes.fromhex(t)) for p, d, t in pairs))
        spread: dict[str, int] = {}
        for phone, _, _ in pairs:
            assert phone.response is not None
            rid = phone.response.headers[ROUTING_ID_HEADER]
            spread[rid] = spread.get(rid, 0) + 1
        assert set(spread) == set(cluster.nodes)
        assert min(spread.values()) > count // 4
        await asyncio.gather(*(d.close() for _, d, _ in pairs))
        await asyncio.gather(*(p.close() for p, _, _ in pairs))
        await stop_and_check(cluster)


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tunnel_server.cluster",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_port_taken_or_haproxy_missing_starts_no_process() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        code, out, err = await run_cli("--nodes", "2", "--port", port)
    assert (code, out) == (1, "")
    assert "error (port_taken)" in err
    missing = ("--nodes", "2", "--port", str(free_port()), "--haproxy", "/nonexistent/haproxy")
    code, out, err = await run_cli(*missing)
    assert (code, out) == (1, "")
    assert "error (haproxy_missing)" in err
    assert "'haproxy'" in err  # the Debian package to install
    code, out, err = await run_cli(
        "--nodes", "1", "--port", str(free_port()), "--host", "unresolvable.invalid", "--insecure"
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err.startswith("error (bad_node_flags)")


@pytest.mark.parametrize(
    "args",
    [
        ("--nodes", "0", "--port", "8443"),
        ("--nodes", "2", "--port", "8443", "--routing-ids", "0A0B0C,0A0B0C"),
        ("--nodes", "2", "--port", "8443", "--host", "0.0.0.0"),
        ("--nodes", "2", "--port", "8443", "--", "--port", "1"),
        ("--nodes", "2", "--port", "8443", "--", "--ttl", "0"),
        # abbreviations argparse accepts, and the PROXY flags the cluster sets itself
        ("--nodes", "2", "--port", "8443", "--", "--rout", "0A0B0C"),
        ("--nodes", "2", "--port", "8443", "--", "--por=9000"),
        ("--nodes", "2", "--port", "8443", "--", "--trusted-proxies", "10.0.0.0/8"),
        ("--nodes", "2", "--port", "8443", "--", "--proxy-protocol"),
        # values HAProxy cannot hold: refused before any node starts
        ("--nodes", "2", "--port", "8443", "--", "--ttl", "1e12"),
        ("--nodes", "2", "--port", "8443", "--max-connections-per-ip", "99999999999999999999"),
        ("--nodes", "2", "--port", "8443", "--host", "127.0.0.1 extra"),
        ("--nodes", "1", "--port", "8443", "--tls-cert", "/nonexistent", "--tls-key", "/x"),
    ],
)
def test_bad_flags_exit_2_before_anything_starts(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(list(args)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(("error (bad_node_flags)", "error (bad_node_list)"))


@pytest.mark.parametrize(
    ("node_args", "flag"),
    [
        (["--rout", "0A0B0C"], "--routing-id"),
        (["--po", "9000"], "--port"),
        (["--tls-k=key.pem"], "--tls-key"),
        (["--grace", "1", "--trusted", "10.0.0.0/8"], "--trusted-proxies"),
        (["--proxy-p"], "--proxy-protocol"),
    ],
)
def test_node_flags_the_cluster_sets_are_refused_in_any_spelling(
    node_args: list[str], flag: str
) -> None:
    args = build_parser().parse_args(["--nodes", "2", "--port", "8443"])
    with pytest.raises(ClusterError) as info:
        settings_from_args(args, node_args)
    assert info.value.reason is ClusterReason.BAD_NODE_FLAGS
    assert flag in str(info.value)


def test_node_flags_keep_their_values() -> None:
    args = build_parser().parse_args(["--nodes", "1", "--port", "8443"])
    settings = settings_from_args(args, ["--grace", "3", "--ttl", "30", "--max-tunnels", "5"])
    assert (settings.grace, settings.ttl) == (3.0, 30.0)
    assert settings.node_args == ("--grace", "3", "--ttl", "30", "--max-tunnels", "5")


async def test_node_flags_with_and_without_proxy_protocol() -> None:
    """PROXY v2 when the nodes accept it; otherwise HAProxy alone caps each client."""
    base = ClusterSettings(routing_ids=("0A0B0C",), port=8443, node_args=("--grace", "3"))
    assert proxy_protocol_supported()  # this tunnel_server has --proxy-protocol
    for proxy, expected in (
        (True, ["--proxy-protocol", "--trusted-proxies", "127.0.0.1/32"]),
        (False, ["--max-connections-per-ip", "1000000"]),
    ):
        cluster = Cluster(dataclasses.replace(base, proxy_protocol=proxy), lambda line: None)
        argv = cluster.node_argv(cluster.slots[0])
        await cluster.stop()
        assert argv[1:] == [
            "-m",
            "tunnel_server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--routing-id",
            "0A0B0C",
            *expected,
            "--grace",
            "3",
        ]
