"""The command line: `python -m tunnel_server` as a real subprocess."""

from __future__ import annotations

import asyncio
import fcntl
import importlib.util
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from websockets.exceptions import InvalidStatus

from hybrid.errors import TunnelError
from tests.tunnel_server.servers import self_signed
from tunnel_server.__main__ import build_parser, config_from_args, main
from tunnel_server.proxy_protocol import build_header
from tunnel_server.testing import (
    ServerStartError,
    cable_connect,
    connect_url,
    http_request,
    new_url,
    running_server_process,
    wait_until,
)

TUNNEL = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
FLAGS = (
    "--host",
    "--port",
    "--routing-id",
    "--ttl",
    "--join-timeout",
    "--max-message-size",
    "--max-messages",
    "--max-tunnels",
    "--max-connections-per-ip",
    "--handshake-timeout",
    "--allow-origin",
    "--tls-cert",
    "--tls-key",
    "--insecure",
    "--grace",
    "--log-level",
    "--max-connections",
    "--ipv6-prefix",
    "--max-tunnels-per-ip",
    "--metrics-allow",
    "--proxy-protocol",
    "--trusted-proxies",
)


def test_help_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in FLAGS:
        assert flag in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "refusing plain ws://"),
        (["--routing-id", "XYZ"], "--routing-id must be 6 hex digits"),
        (["--tls-key", "key.pem"], "must be given together"),
    ],
)
def test_bad_flags_exit_2_with_advice(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--port", "0", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--host", "a" * 70, "--insecure"], "--host"),  # a DNS label IDNA cannot encode
        (["--host", "x..y", "--insecure"], "--host"),
        (["--host", "bad\x00host", "--insecure"], "--host"),
        (["--ttl", "inf"], "--ttl"),
        (["--join-timeout", "nan"], "--join-timeout"),
        (["--handshake-timeout", "inf"], "--handshake-timeout"),
        (["--close-timeout", "nan"], "--close-timeout"),
        (["--grace", "nan"], "--grace"),
        (["--grace", "inf"], "--grace"),
        (["--ping-interval", "inf"], "--ping-interval"),
    ],
)
def test_unusable_hosts_and_non_finite_numbers_exit_2(
    args: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--port", "0", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert flag in captured.err
    assert captured.out == ""


def test_an_encrypted_tls_key_is_refused_without_prompting(tmp_path: Path) -> None:
    """OpenSSL would ask for the passphrase on the terminal and wait there for ever."""
    cert, key = self_signed(tmp_path)
    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    key.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    controller, terminal = pty.openpty()
    argv = [sys.executable, "-m", "tunnel_server", "--port", "0"]
    proc = subprocess.Popen(
        [*argv, "--tls-cert", str(cert), "--tls-key", str(key)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,  # then the pty becomes its controlling terminal
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(terminal)
    try:
        assert proc.wait(timeout=15) == 2
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        output = os.read(controller, 4096)
        os.close(controller)
    assert output.startswith(b"error: ")
    assert str(key).encode() in output


def test_cidr_lists_are_split_on_commas() -> None:
    args = build_parser().parse_args(
        ["--metrics-allow", "10.0.0.0/8, ::1", "--trusted-proxies", "192.0.2.1/32"]
    )
    config = config_from_args(args)
    assert config.metrics_allow == ("10.0.0.0/8", "::1")
    assert config.trusted_proxies == ("192.0.2.1/32",)
    assert not config.proxy_protocol


async def spawn(*args: str) -> asyncio.subprocess.Process:
    """`python -m tunnel_server --port 0 *args` with stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tunnel_server", "--port", "0", *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


async def listening_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
    match = re.fullmatch(r"listening on (ws://127\.0\.0\.1:\d+)\n", line)
    assert match is not None, line
    return match[1]


async def test_process_serves_a_tunnel_and_stops_on_sigterm() -> None:
    proc = await spawn("--routing-id", "abcdef")
    url = await listening_url(proc)
    phone = await cable_connect(new_url(url, TUNNEL))
    desktop = await cable_connect(connect_url(url, "ABCDEF", TUNNEL))
    await desktop.send(b"via a real process")
    assert await phone.recv() == b"via a real process"
    await desktop.close()
    await phone.close()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert proc.stdout is not None and proc.stderr is not None
    assert await proc.stdout.read() == b""  # exactly one line on stdout
    err = (await proc.stderr.read()).decode()
    assert "event=server_started" in err and "event=server_stopped" in err


async def test_running_server_process_yields_the_url_and_cleans_up() -> None:
    async with running_server_process("--routing-id", "0A0B0C", "--grace", "1") as url:
        assert url.startswith("ws://127.0.0.1:")
        assert (await http_request(url, "/healthz", headers={})).status == 200
        phone = await cable_connect(new_url(url, TUNNEL))
        with pytest.raises(InvalidStatus):
            await cable_connect(connect_url(url, "FFFFFF", TUNNEL))
        await phone.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))


async def test_running_server_process_reports_stderr_on_failure() -> None:
    with pytest.raises(ServerStartError, match="--ttl must be greater than 0") as info:
        async with running_server_process("--ttl", "0"):
            pytest.fail("the server should not have started")
    assert isinstance(info.value, TunnelError)


async def test_uvloop_flag() -> None:
    proc = await spawn("--uvloop")
    if importlib.util.find_spec("uvloop") is None:
        assert await asyncio.wait_for(proc.wait(), 10) == 2
        assert proc.stderr is not None
        assert b"pip install uvloop" in await proc.stderr.read()
        return
    url = await listening_url(proc)
    phone = await cable_connect(new_url(url, TUNNEL))
    await phone.close()
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_second_signal_cuts_the_grace_period() -> None:
    proc = await spawn("--routing-id", "0A0B0C", "--grace", "60")
    url = await listening_url(proc)
    phone = await cable_connect(new_url(url, TUNNEL))
    desktop = await cable_connect(connect_url(url, "0A0B0C", TUNNEL))
    proc.send_signal(signal.SIGTERM)
    await desktop.send(b"grace")
    assert await phone.recv() == b"grace"
    assert proc.returncode is None
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    await asyncio.wait_for(phone.wait_closed(), 5)
    assert phone.close_code == 1001


async def test_cluster_node_flags_health_and_drain() -> None:
    """A node as the cluster runner starts it: PROXY v2 from 127.0.0.1 only, /healthz 200
    while serving, refused once SIGTERM started the drain, joined tunnels still relayed."""
    proc = await spawn(
        "--host", "127.0.0.1", "--routing-id", "0A0B0C", "--proxy-protocol",
        "--trusted-proxies", "127.0.0.1/32", "--grace", "30",
    )  # fmt: skip
    url = await listening_url(proc)
    port = int(url.rsplit(":", 1)[1])
    local = build_header(None, None)
    assert (await http_request(url, "/healthz", headers={}, prefix=local)).status == 200
    forwarded = build_header(("198.51.100.9", 1234), ("127.0.0.1", port))
    phone = await cable_connect(new_url(url, TUNNEL), sock=_sent(port, forwarded))
    desktop = await cable_connect(connect_url(url, "0A0B0C", TUNNEL), sock=_sent(port, forwarded))
    proc.send_signal(signal.SIGTERM)

    async def health_refused() -> bool:
        try:
            await http_request(url, "/healthz", headers={}, prefix=local)
        except OSError:
            return True
        return False

    await wait_until(health_refused, timeout=15, what="/healthz refused while draining")
    await desktop.send(b"draining")
    assert await phone.recv() == b"draining"
    assert proc.returncode is None
    await desktop.close()
    await phone.wait_closed()
    assert await asyncio.wait_for(proc.wait(), 10) == 0


def _sent(port: int, prefix: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(prefix)
    sock.setblocking(False)
    return sock
