"""`python -m hybrid.authenticator`: full ceremonies against a real desktop, and every exit code.

The phone CLI runs in-process (`run()` with a BumbleAdvertiser on a VirtualRadio) against a real
`HybridClient` scanning the same radio and a real tunnel server; results are checked by
`fido2.server.Fido2Server`. Ctrl-C and --help run the real `python -m` subprocess.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket
from fido2 import cbor
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hybrid.authenticator import SoftwareAuthenticator
from hybrid.authenticator.approval import ApprovalRequest
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.cli.common import (
    EXIT_BLUETOOTH,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    PrintableFormatter,
)
from hybrid.cli.phone import EXIT_STORE, default_store_path, main, open_store, run, url_from_stdin
from hybrid.cli.prompt import TerminalApprover, prompt_text, read_line
from hybrid.ctap import CtapCommand, CtapStatus, MakeCredentialKey
from hybrid.desktop import HybridClient
from hybrid.errors import HybridError, OperationDenied
from hybrid.protocol import QRCode
from hybrid.qr import write_png
from tunnel_server import TunnelServer
from tunnel_server.testing import http_request, wait_until

RP = PublicKeyCredentialRpEntity(id="example.com", name="Example")
ALICE = PublicKeyCredentialUserEntity(id=b"user-alice", name="alice", display_name="Alice")
ArgvFor = Callable[[str], list[str]]


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the default store out of the real home folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


def qr_url(request_type: str = "mc") -> str:
    return QRCode.generate(request_type)[0].to_url()


async def ceremony(
    radio: VirtualRadio,
    tunnel_process: str,
    argv_for: ArgvFor,
    *,
    register: bool,
    rp: Fido2Server,
    credentials: list[Any] | None = None,
) -> tuple[Any, int]:
    """One desktop ceremony whose QR code the phone CLI answers.

    Returns what the relying party verified (or the desktop's HybridError) and the CLI's exit
    code, so a refusal can be checked on both sides.
    """
    advertiser = await BumbleAdvertiser.from_radio(radio, interval_ms=20)
    client = HybridClient(
        origin="https://example.com",
        tunnel_url=tunnel_process,
        timeout=20,
        scanner_backend=BumbleScannerBackend,
        scanner_kwargs={"radio": radio},
    )
    phone: list[asyncio.Task[int]] = []

    def show_qr(url: str) -> None:
        argv = [*argv_for(url), "--tunnel-url", tunnel_process, "--timeout", "20"]
        phone.append(asyncio.create_task(run(argv, advertiser=advertiser)))

    result: Any
    try:
        if register:
            # The CLI's y/N prompt is presence, not verification: the site must not demand UV.
            creation, state = rp.register_begin(
                ALICE,
                resident_key_requirement=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.DISCOURAGED,
            )
            response = await client.make_credential(dict(creation), show_qr)
            result = rp.register_complete(state, response)
        else:
            request, state = rp.authenticate_begin(
                user_verification=UserVerificationRequirement.DISCOURAGED
            )
            response = await client.get_assertion(dict(request), show_qr)
            result = rp.authenticate_complete(state, credentials or [], response)
    except HybridError as exc:
        result = exc
    finally:
        if phone:  # the phone finishes on its own; a stuck one must not outlive the test
            _, pending = await asyncio.wait(phone, timeout=10)
            for task in pending:
                task.cancel()
    assert len(phone) == 1
    return result, phone[0].result()


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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["https://example.com/"], "must start with FIDO:/"),
        (["FIDO:/12x"], "Copy the whole FIDO:/ text again"),
        (["FIDO:/"], "empty"),
        ([qr_url(), "--qr-image", "qr.png"], "not allowed with"),
        ([], "one of the arguments"),
        (["--qr-image", "/nonexistent/qr.png"], "No image file"),
        ([qr_url(), "--tunnel-url", "http://example.com/x"], "Bad --tunnel-url"),
        ([qr_url(), "--timeout", "0"], "positive number of seconds"),
        ([qr_url(), "--timeout", "nan"], "positive number of seconds"),
        ([qr_url(), "--advertiser", "carrier-pigeon"], "is not an advertiser"),
        ([qr_url(), "--advertiser", "bumble:"], "is not an advertiser"),
        ([qr_url(), "--advertiser", "bluez:hci 0"], "not a Bluetooth adapter name"),
    ],
)
def test_usage_errors_are_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--store", ":memory:"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert message in err and out == ""
    assert "Traceback" not in err


def test_image_without_a_qr_code_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "blank.png"
    image.write_bytes(b"not a picture")
    assert main(["--qr-image", str(image), "--store", ":memory:"]) == EXIT_USAGE
    assert "error: " in capsys.readouterr().err


def test_verbose_errors_carry_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["FIDO:/12x", "--store", ":memory:", "-v"]) == EXIT_USAGE
    assert "Traceback" in capsys.readouterr().err


def test_damaged_store_is_exit_5_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "passkeys.json"
    store.write_text("{not json")
    assert main([qr_url(), "--store", str(store)]) == EXIT_STORE
    assert "is damaged" in capsys.readouterr().err
    assert store.read_text() == "{not json"


def test_store_in_a_missing_folder_is_exit_5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([qr_url(), "--store", str(tmp_path / "nope" / "s.json")]) == EXIT_STORE
    assert "does not exist: create it" in capsys.readouterr().err


def test_default_store_follows_xdg_and_is_private(
    data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = data_home / "fido-hybrid" / "credentials.json"
    assert default_store_path() == path
    assert open_store(None).path == path
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # the XDG spec says: ignore it
    assert default_store_path() == Path.home() / ".local/share/fido-hybrid/credentials.json"
    assert open_store(":memory:").path is None


def test_prompts_name_the_site_and_account_and_defuse_escapes() -> None:
    assert prompt_text(ApprovalRequest("get", "example.com", "alice", "Alice")) == (
        "Sign in to example.com as alice? [y/N] "
    )
    assert prompt_text(ApprovalRequest("create", "example.com", None, "Alice")) == (
        "Create a passkey for Alice on example.com? [y/N] "
    )
    assert "no passkey" in prompt_text(ApprovalRequest("get", "example.com", None, None))
    hostile = prompt_text(ApprovalRequest("create", "evil\x1b]0;x\x07.com", "a" * 500, None))
    assert "\x1b" not in hostile and "\x07" not in hostile and len(hostile) < 220


async def test_read_line_from_a_pipe_and_at_end_of_input() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as reader:
        os.write(write_fd, b"yes\nmore")
        assert await read_line(reader) == "yes\n"  # stops at the line's end
        os.close(write_fd)
        assert await read_line(reader) == "more"
        assert await read_line(reader) == ""


async def test_an_unanswered_prompt_does_not_hold_up_the_loop() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as reader:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(read_line(reader), 0.05)  # what a ceremony timeout does
        os.close(write_fd)  # the abandoned reader thread then sees end of input and ends
        await wait_until(
            lambda: not any(t.name == "approval-prompt" for t in threading.enumerate()),
            2,
            "the prompt thread to end",
        )


async def test_yes_approves_without_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    approver = TerminalApprover(assume_yes=True)
    assert await approver(ApprovalRequest("get", "example.com", "alice", None)) is True
    assert approver.rp_id == "example.com" and sys.stdin.read() == "n\n"


def test_help_runs_as_a_subprocess() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "hybrid.authenticator", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for text in (
        "--qr-image",
        "--tunnel-url",
        "--store",
        "--advertiser",
        "--yes",
        "--link",
        "--timeout",
        "--name",
        "--verbose",
        "FIDO:/...|-",
        "presence only",
        "exit codes:",
        "130",
    ):
        assert text in done.stdout


async def test_ctrl_c_stops_the_advert_and_closes_the_tunnel(
    radio: VirtualRadio, local_server: TunnelServer
) -> None:
    # A controller on the radio behind HCI-over-TCP: the subprocess uses it as a USB dongle.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    dongle: Any = await open_tcp_server_transport_with_socket(sock)  # has .server
    try:
        controller = radio.add_controller("dongle", dongle.source, dongle.sink)
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


@pytest.mark.parametrize("stdin", ["", "\n", "  \n"])
def test_no_qr_text_on_stdin_is_exit_2(stdin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main(["-", "--store", ":memory:"]) == EXIT_USAGE


async def test_the_terminal_never_passes_for_user_verification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A y/N is presence: a request needing verification is declined, not asked, not assumed."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    request = ApprovalRequest("get", "example.com", "alice", None, user_verification=True)
    for assume_yes in (True, False):
        assert await TerminalApprover(assume_yes)(request) is False
    assert sys.stdin.read() == "y\n"  # nothing was read


async def test_a_hostile_site_and_account_name_reach_the_prompt_and_log_printable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The desktop chooses the rpId and user name the phone's prompt and log show."""
    caplog.set_level(logging.DEBUG, logger="hybrid")
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    phone = SoftwareAuthenticator(approve=TerminalApprover(False))
    request = {
        MakeCredentialKey.CLIENT_DATA_HASH: bytes(32),
        MakeCredentialKey.RP: {"id": "\x1b[2Jevil.example\u202e", "name": "x"},
        MakeCredentialKey.USER: {"id": b"u", "name": "alice\x1b[8m", "displayName": "A"},
        MakeCredentialKey.PUB_KEY_CRED_PARAMS: [{"type": "public-key", "alg": -7}],
    }
    reply = await phone.handle_ctap(bytes([CtapCommand.MAKE_CREDENTIAL]) + cbor.encode(request))
    assert reply[0] == CtapStatus.SUCCESS
    err = capsys.readouterr().err
    assert "Create a passkey for alice?[8m on ?[2Jevil.example?? [y/N] " in err
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "?[2Jevil.example?" in logged
    for text in (err, logged):
        assert "\x1b" not in text and "\u202e" not in text


def test_cli_log_lines_are_printable() -> None:
    try:
        raise ValueError("peer said \x1b[2J\u202e")
    except ValueError:
        record = logging.LogRecord(
            "hybrid", logging.WARNING, __file__, 1, "got %s", ("\x9b31m",), sys.exc_info()
        )
    line = PrintableFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert line.startswith("WARNING hybrid: got ?31m\nTraceback")
    assert "ValueError: peer said ?[2J?" in line
    assert not any(c in line for c in "\x1b\u202e\x9b")


async def test_a_terminal_is_asked_for_the_qr_text_and_a_pipe_is_not() -> None:
    url = qr_url()
    for opener in (os.openpty, os.pipe):
        reader_fd, writer_fd = opener()
        err = io.StringIO()
        with os.fdopen(reader_fd) as stdin:
            os.write(writer_fd, f"  {url}\ny\n".encode())
            assert await url_from_stdin(stdin, err) == url
            assert (await read_line(stdin)).strip() == "y"  # left for the approval prompt
        os.close(writer_fd)
        asked = err.getvalue()
        assert (asked.endswith(": ") and url not in asked) if opener is os.openpty else asked == ""
