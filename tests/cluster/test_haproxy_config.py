"""The generated HAProxy configuration: pure rendering, and real `haproxy -c` validation."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from tests.tunnel_server.servers import self_signed
from tunnel_server.cluster import ClusterError, ClusterReason, Front, Node, render
from tunnel_server.cluster.haproxy import (
    HAPROXY_INT_MAX,
    HAPROXY_TIMER_MAX,
    NEW_BACKEND,
    TIMER_MARGIN,
)
from tunnel_server.cluster.runtime import parse_stat
from tunnel_server.cluster.supervisor import find_haproxy

NODES = [Node("0A0B0C", "127.0.0.1", 8101), Node("D1E2F3", "127.0.0.1", 8102)]


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_map_names_one_backend_per_routing_id() -> None:
    files = render(NODES, Front(map_path="/etc/haproxy/rids.map"))
    assert files.rid_map == "0A0B0C node_0A0B0C\nD1E2F3 node_D1E2F3\n"
    config = lines(files.config)
    for node in NODES:
        assert f"backend {node.name}" in config
        assert f"server {node.name} {node.address} track {NEW_BACKEND}/{node.name}" in config
    assert "map(/etc/haproxy/rids.map)" in files.config
    # the routing ID is the 4th path field, matched in uppercase like the map keys
    assert "path,field(4,/),upper,map(" in files.config


def test_new_tunnels_leastconn_over_health_checked_nodes() -> None:
    text = render(NODES, Front(map_path="m")).config
    config = lines(text)
    backend = next(lines(s) for s in text.split("\n\n") if s.startswith(f"backend {NEW_BACKEND}"))
    assert "balance leastconn" in backend
    assert "http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host cluster-check" in backend
    assert "http-check expect status 200" in backend
    assert "default-server inter 1s fall 2 rise 2" in config
    servers = [line for line in backend if line.startswith("server ")]
    assert len(servers) == 2
    assert all(" check " in line and "on-error mark-down" in line for line in servers)


def test_tunnel_timeout_outlasts_ttl_and_stop_outlasts_grace() -> None:
    config = lines(render(NODES, Front(map_path="m", ttl=300.5, grace=40)).config)
    assert "timeout tunnel 331s" in config
    # a reload must not cut the old worker's tunnels short of their TTL
    assert "hard-stop-after 331s" in config
    config = lines(render(NODES, Front(map_path="m", ttl=10, grace=60)).config)
    assert "hard-stop-after 90s" in config


def test_proxy_protocol_only_when_nodes_accept_it() -> None:
    plain = render(NODES, Front(map_path="m")).config
    assert "send-proxy" not in plain
    proxied = lines(render(NODES, Front(map_path="m", proxy_protocol=True)).config)
    servers = [line for line in proxied if line.startswith("server ")]
    assert len(servers) == 4
    assert all("send-proxy-v2" in line for line in servers)
    assert sum("check-send-proxy" in line for line in servers) == 2


def test_per_client_cap_and_tls_bind() -> None:
    front = Front(map_path="m", host="::", port=443, tls_pem="/etc/c.pem", max_connections_per_ip=7)
    config = lines(render(NODES, front).config)
    assert "bind [::]:443 v4v6 ssl crt /etc/c.pem alpn http/1.1" in config
    assert "tcp-request connection track-sc0 src" in config
    assert "tcp-request connection reject if { sc0_conn_cur gt 7 }" in config


@pytest.mark.parametrize(
    "nodes",
    [
        [],
        [Node("0A0B0C", "127.0.0.1", 1), Node("0A0B0C", "127.0.0.1", 2)],
        [Node("0A0B0C", "127.0.0.1", 1), Node("0A0B0D", "127.0.0.1", 1)],
        [Node("0a0b0c", "127.0.0.1", 1)],
        [Node("0A0B0", "127.0.0.1", 1)],
        [Node("0A0B0C", "127.0.0.1", 0)],
        [Node("0A0B0C", "", 1)],
        [Node("0A0B0C", "127.0.0.1\nbackend x", 1)],
    ],
)
def test_bad_node_lists_are_refused(nodes: list[Node]) -> None:
    with pytest.raises(ClusterError) as info:
        render(nodes, Front(map_path="m"))
    assert info.value.reason is ClusterReason.BAD_NODE_LIST


def haproxy_check(tmp_path: Path, front: Front) -> subprocess.CompletedProcess[str]:
    """`haproxy -c` on the files rendered for `NODES` behind `front`."""
    files = render(NODES, front)
    (tmp_path / "rids.map").write_text(files.rid_map)
    (tmp_path / "haproxy.cfg").write_text(files.config)
    return subprocess.run(
        [find_haproxy(None), "-c", "-f", str(tmp_path / "haproxy.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("proxy_protocol", [False, True])
def test_haproxy_accepts_the_generated_config(tmp_path: Path, proxy_protocol: bool) -> None:
    cert, key = self_signed(tmp_path)
    pem = tmp_path / "front.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    front = Front(
        map_path=str(tmp_path / "rids.map"),
        tls_pem=str(pem),
        proxy_protocol=proxy_protocol,
        stats_socket=str(tmp_path / "haproxy.sock"),
    )
    result = haproxy_check(tmp_path, front)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout + result.stderr


def test_stat_parsing_picks_the_new_tunnel_servers() -> None:
    text = (
        "# pxname,svname,status,check_status,\n"
        f"{NEW_BACKEND},FRONTEND,OPEN,,\n"
        f"{NEW_BACKEND},node_0A0B0C,UP,L7OK,\n"
        f"{NEW_BACKEND},node_D1E2F3,DOWN,L4CON,\n"
        f"{NEW_BACKEND},BACKEND,UP,,\n"
        "node_0A0B0C,node_0A0B0C,UP,,\n"
    )
    states = parse_stat(text)
    assert [(s.name, s.healthy) for s in states] == [
        ("node_0A0B0C", True),
        ("node_D1E2F3", False),
    ]


def test_haproxy_accepts_the_largest_settings_the_checks_allow(tmp_path: Path) -> None:
    top = HAPROXY_TIMER_MAX - TIMER_MARGIN
    front = Front(
        map_path=str(tmp_path / "rids.map"),
        ttl=top,
        grace=top,
        handshake_timeout=top,
        max_connections=HAPROXY_INT_MAX,
        max_connections_per_ip=HAPROXY_INT_MAX,
    )
    result = haproxy_check(tmp_path, front)
    assert result.returncode == 0, result.stdout + result.stderr
    with pytest.raises(ClusterError) as info:
        render(NODES, dataclasses.replace(front, ttl=top + 1))
    assert info.value.reason is ClusterReason.BAD_NODE_FLAGS
