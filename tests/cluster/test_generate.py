"""`python -m tunnel_server.cluster.generate` and the example shipped under deploy/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunnel_server.cluster import ClusterError, ClusterReason, Node
from tunnel_server.cluster.generate import main, parse_node_list

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
#: The flags deploy/nodes.txt says the example was generated with.
EXAMPLE_FLAGS = ["--tls-pem", "/etc/haproxy/cable.pem", "--stats-socket", "/run/haproxy-cable.sock"]


def test_node_list_lines_comments_and_ipv6() -> None:
    text = "# nodes\n0a0b0c 127.0.0.1:8101  # first\n\n1D2E3F [::1]:8102\n"
    assert parse_node_list(text) == [
        Node("0A0B0C", "127.0.0.1", 8101),
        Node("1D2E3F", "::1", 8102),
    ]


@pytest.mark.parametrize(
    "line", ["0A0B0C", "0A0B0C 127.0.0.1", "0A0B0C 127.0.0.1:http", "XYZXYZ 127.0.0.1:1", "a b c"]
)
def test_bad_node_list_lines_are_refused(line: str) -> None:
    with pytest.raises(ClusterError) as info:
        parse_node_list(line)
    assert info.value.reason is ClusterReason.BAD_NODE_LIST


def test_the_deploy_example_is_what_the_generator_writes(tmp_path: Path) -> None:
    assert main([str(DEPLOY / "nodes.txt"), "--out-dir", str(tmp_path), *EXAMPLE_FLAGS]) == 0
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    shipped = sorted(
        p.relative_to(DEPLOY / "generated")
        for p in (DEPLOY / "generated").rglob("*")
        if p.is_file()
    )
    assert generated == shipped
    for name in generated:
        assert (tmp_path / name).read_text() == (DEPLOY / "generated" / name).read_text(), name
    assert (tmp_path / "nodes" / "1D2E3F.env").read_text() == "HOST=127.0.0.1\nPORT=8102\n"
    assert "send-proxy-v2" in (tmp_path / "haproxy.cfg").read_text()


def test_a_bad_node_list_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = tmp_path / "nodes.txt"
    nodes.write_text("0A0B0C 127.0.0.1:8101\n0A0B0C 127.0.0.1:8102\n")
    assert main([str(nodes), "--out-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error (bad_node_list)")
    assert not (tmp_path / "out").exists()
    assert main([str(tmp_path / "missing.txt"), "--out-dir", str(tmp_path / "out")]) == 2


@pytest.mark.parametrize(
    "flags",
    [
        ["--ttl", "nan"],
        ["--ttl", "inf"],
        ["--ttl", "0"],
        ["--grace", "-5"],
        ["--port", "99999"],
        ["--port", "0"],
        ["--max-connections-per-ip", "0"],
        ["--max-connections", "-3"],
        ["--max-connections", "99999999999"],
        ["--max-connections-per-ip", "99999999999999999999"],
        ["--ttl", "1e12"],
        ["--grace", "2147460"],
        ["--map-path", "/etc/haproxy/cable rids.map"],
        ["--tls-pem", ""],
        ["--stats-socket", "/run/a\nb"],
        ["--host", "127.0.0.1 extra"],
    ],
)
def test_bad_settings_exit_2_and_write_nothing(
    tmp_path: Path, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = tmp_path / "nodes.txt"
    nodes.write_text("0A0B0C 127.0.0.1:8101\n")
    assert main([str(nodes), "--out-dir", str(tmp_path / "out"), *flags]) == 2
    assert capsys.readouterr().err.startswith("error (bad_node_flags)")
    assert not (tmp_path / "out").exists()


def test_unreadable_list_or_unwritable_out_dir_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "nodes.bin"
    binary.write_bytes(b"\xff\xfe0A0B0C 127.0.0.1:8101\n")
    assert main([str(binary), "--out-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error (bad_node_list)")
    nodes = tmp_path / "nodes.txt"
    nodes.write_text("0A0B0C 127.0.0.1:8101\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert main([str(nodes), "--out-dir", str(a_file)]) == 1
    assert capsys.readouterr().err.startswith("error (cannot_write)")
