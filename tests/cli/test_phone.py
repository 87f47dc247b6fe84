"""`python -m hybrid.authenticator`: ceremonies against a real desktop, Bluetooth failures, Ctrl-C.

The phone CLI runs in-process (`run()` with a BumbleAdvertiser on a VirtualRadio) against a real
`HybridClient` scanning the same radio and a real tunnel server; results are checked by
`fido2.server.Fido2Server`. Ctrl-C runs the real `python -m` subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket
from fido2.server import Fido2Server

from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.cli.common import (
    EXIT_BLUETOOTH,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
)
from hybrid.cli.phone import main, run
from hybrid.errors import OperationDenied
from hybrid.qr import write_png
from tests.cli.phone_cli import RP, ceremony, qr_url
from tunnel_server import TunnelServer
from tunnel_server.testing import http_request, wait_until

pytestmark = pytest.mark.usefixtures("data_home")  # the default store stays out of $HOME


async def test_register_then_sign_in_with_a_store_file(
    radio: VirtualRadio, tunnel_process: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "passkeys.json"
    rp = Fido2Server(RP)
    registered, code = await ceremony(
        radio,
        tunnel_process,
        lambda url: [url, "--store", str(store), "--yes"],
        register=True,
        rp=rp,
    )
    assert code == EXIT_OK
    out, err = capsys.readouterr()
    assert out == "answered makeCredential for example.com: OK\n"
    assert "Advertising over Bluetooth" in err
    assert stat.S_IMODE(store.stat().st_mode) == 0o600

    # A second process would read the file: the passkey must come from it, not from memory.
    assertion, code = await ceremony(
        radio,
        tunnel_process,
        lambda url: [url, "--store", str(store), "--yes", "--link"],
        register=False,
        rp=rp,
        credentials=[registered.credential_data],
    )
    assert code == EXIT_OK
    assert assertion.credential_id == registered.credential_data.credential_id
    out, err = capsys.readouterr()
    assert out == "answered getAssertion for example.com: OK\n"
    assert "Sent linking info" in err


@pytest.mark.parametrize("answer", ["n\n", "", "yes please\n"])
async def test_anything_but_yes_declines(
    radio: VirtualRadio,
    tunnel_process: str,
    answer: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer))
    result, code = await ceremony(
        radio,
        tunnel_process,
        lambda url: [url, "--store", ":memory:"],
        register=True,
        rp=Fido2Server(RP),
    )
    assert isinstance(result, OperationDenied) and code == EXIT_OK
    out, err = capsys.readouterr()
    assert "Create a passkey for alice on example.com? [y/N] " in err
    assert out == "answered makeCredential for example.com: OPERATION_DENIED\n"


async def test_piped_yes_and_a_qr_image(
    radio: VirtualRadio,
    local_server: TunnelServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Y\n"))
    image = tmp_path / "qr.png"

    def from_image(url: str) -> list[str]:
        write_png(url, image)  # what the desktop shows, read back by zbarimg
        return ["--qr-image", str(image), "--store", ":memory:"]

    registered, code = await ceremony(
        radio, local_server.url, from_image, register=True, rp=Fido2Server(RP)
    )
    assert code == EXIT_OK and registered.credential_data is not None
    assert capsys.readouterr().out == "answered makeCredential for example.com: OK\n"


async def test_the_qr_text_can_come_from_stdin_with_the_answer_after_it(
    radio: VirtualRadio,
    local_server: TunnelServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`-` keeps the secret out of argv; read unbuffered, the y line stays for the prompt."""
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)

        def piped(url: str) -> list[str]:
            os.write(write_fd, f"{url}\ny\n".encode())
            os.close(write_fd)
            return ["-", "--store", ":memory:"]

        registered, code = await ceremony(
            radio, local_server.url, piped, register=True, rp=Fido2Server(RP)
        )
    assert code == EXIT_OK and registered.credential_data is not None
    out, err = capsys.readouterr()
    assert out == "answered makeCredential for example.com: OK\n"
    assert "Create a passkey for alice on example.com? [y/N] " in err


async def metric(base_url: str, name: str) -> float:
    reply = await http_request(base_url, "/metrics", headers={})
    for line in reply.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in {reply.body!r}")


async def test_timeout_leaves_nothing_running(
    radio: VirtualRadio, tunnel_process: str, capsys: pytest.CaptureFixture[str]
) -> None:
    advertiser = await BumbleAdvertiser.from_radio(radio, interval_ms=20)
    before = asyncio.all_tasks()
    code = await run(
        [qr_url(), "--tunnel-url", tunnel_process, "--store", ":memory:", "--timeout", "0.3"],
        advertiser=advertiser,
    )
    assert code == EXIT_TIMEOUT
    assert "within 0.3 s" in capsys.readouterr().err
    assert not advertiser._device.is_advertising
    assert asyncio.all_tasks() <= before
    assert await metric(tunnel_process, "cable_tunnels_created_total") == 1

    async def closed() -> bool:
        return await metric(tunnel_process, "cable_tunnels_active") == 0

    await wait_until(closed, 2, "the server to see the tunnel closed")


@pytest.mark.parametrize("flags", [["--advertiser", "bluez"], ["--advertiser", "bluez:hci1"], []])
async def test_bluez_without_dbus_is_exit_3(
    local_server: TunnelServer,
    tmp_path: Path,
    flags: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    code = await run([qr_url(), "--tunnel-url", local_server.url, "--store", ":memory:", *flags])
    assert code == EXIT_BLUETOOTH
    assert "D-Bus" in capsys.readouterr().err
    await wait_until(lambda: local_server.open_connections() == 0, 2, "the tunnel to close")


def test_unreachable_bumble_controller_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = f"bumble:tcp-client:127.0.0.1:{port}"
    code = main([qr_url(), "--tunnel-url", "ws://127.0.0.1:9", "--advertiser", spec])
    assert code == EXIT_BLUETOOTH
    assert "plugged in" in capsys.readouterr().err


@contextlib.contextmanager
def sigint_ignored(ignored: bool) -> Iterator[None]:
    """SIGINT ignored in this process while the block runs, as a shell starts `pytest &`."""
    if not ignored:
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def children_get_ctrl_c() -> Iterator[None]:
    """Let a child started in the block see Ctrl-C even if this process ignores SIGINT.

    An ignored signal stays ignored across exec, and Python then installs no KeyboardInterrupt
    handler: a child of `pytest &` (a shell runs background jobs with SIGINT ignored) would
    sit out the test's SIGINT. A handled signal is reset to the default at exec instead.
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("parent_ignores_sigint", [False, True], ids=["foreground", "pytest_bg"])
async def test_ctrl_c_stops_the_advert_and_closes_the_tunnel(
    radio: VirtualRadio, local_server: TunnelServer, parent_ignores_sigint: bool
) -> None:
    # A controller on the radio behind HCI-over-TCP: the subprocess uses it as a USB dongle.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    dongle: Any = await open_tcp_server_transport_with_socket(sock)  # has .server
    try:
        controller = radio.add_controller("dongle", dongle.source, dongle.sink)
        with sigint_ignored(parent_ignores_sigint), children_get_ctrl_c():
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hybrid.authenticator",
                qr_url(),
                "--yes",
                "--tunnel-url",
                local_server.url,
                "--store",
                ":memory:",
                "--advertiser",
                f"bumble:tcp-client:127.0.0.1:{port}",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        assert proc.stderr is not None
        async with asyncio.timeout(20):
            while b"Advertising" not in (line := await proc.stderr.readline()):
                assert line, "the CLI exited before advertising"
        assert controller.is_advertising and local_server.open_connections() == 1
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == EXIT_INTERRUPTED, err
        assert b"interrupted" in err and b"Traceback" not in err and out == b""
        assert not controller.is_advertising
        await wait_until(lambda: local_server.open_connections() == 0, 2, "the tunnel to close")
    finally:
        await dongle.close()
        dongle.server.close()
        await dongle.server.wait_closed()
