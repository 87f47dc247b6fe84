"""`python -m hybrid.qr`: real subprocesses for the edges, in-process for a full ceremony."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fido2.server import Fido2Server
from fido2.utils import websafe_encode
from fido2.webauthn import PublicKeyCredentialRpEntity

from hybrid.authenticator import SoftwareAuthenticator, answer_qr, approve_all
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.cli.common import EXIT_BLUETOOTH, EXIT_OK, EXIT_USAGE
from hybrid.cli.desktop import TerminalUI, build_parser, generated_options, run
from hybrid.desktop import HybridClient
from hybrid.errors import TunnelError
from hybrid.qr import decode_qr_image
from hybrid.status import Stage, Status
from hybrid.tunnel import plaintext_warning
from tunnel_server import TunnelServer


def _cli(*args: str, tmp_path: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "hybrid.qr", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env=env,
    )


def test_help_lists_exit_codes(tmp_path: Path) -> None:
    result = _cli("--help", tmp_path=tmp_path)
    assert result.returncode == 0
    assert "exit codes" in result.stdout and "Bluetooth unavailable" in result.stdout


def test_bluetooth_unavailable_exits_3_without_showing_a_code(tmp_path: Path) -> None:
    result = _cli("--rp-id", "example.com", tmp_path=tmp_path)
    assert result.returncode == EXIT_BLUETOOTH
    assert "D-Bus" in result.stderr
    assert "Scan this code" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["--options", "/nonexistent/options.json"], ""),
        (["--options", "-"], "{not json"),
        (
            ["--options", "-", "--origin", "https://evil.example"],
            '{"challenge": "AAAA", "rpId": "example.com"}',
        ),
        (["--options", "-"], '{"rpId": "example.com"}'),
        (["--timeout", "soon"], ""),
        (["--prf", "a", "--prf", "b", "--prf", "c"], ""),
        (["--prf", "\udcff"], ""),  # a byte that is not UTF-8 in argv
    ],
)
def test_usage_errors_exit_2(args: list[str], stdin: str, tmp_path: Path) -> None:
    result = _cli(*args, tmp_path=tmp_path, stdin=stdin)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = _cli("demo", "--no-qr", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Fido2Server verified the registration" in result.stdout
    assert "Fido2Server verified the sign-in signature" in result.stdout
    assert "Fido2Server verified the registration (transports: usb)" in result.stdout
    assert "The security key answered" in result.stdout


async def run_on_radio(
    args: argparse.Namespace, options: Any, radio: VirtualRadio, scan: Callable[[str], None]
) -> tuple[int, str, str]:
    """The CLI's ceremony scanning the virtual radio; `scan(url)` plays the phone's camera.

    Returns the exit code, stdout and stderr.
    """
    out, err = io.StringIO(), io.StringIO()
    code = await run(
        args,
        dict(options["publicKey"]),
        out,
        err,
        after_qr=scan,
        scanner_backend=BumbleScannerBackend,
        scanner_kwargs={"radio": radio},
    )
    return code, out.getvalue(), err.getvalue()


async def _run_in_process(
    args: argparse.Namespace,
    options: Any,
    scan: Callable[[str], None],
    radio: VirtualRadio,
    answered: list[asyncio.Task[object]],
) -> tuple[dict[str, Any], str]:
    """One successful `run` over the virtual radio: the credential JSON (stdout) and stderr."""
    code, out, err = await run_on_radio(args, {"publicKey": options}, radio, scan)
    assert code == EXIT_OK
    await answered[-1]
    return json.loads(out), err


async def test_register_and_sign_in_scanning_the_png(
    tmp_path: Path, local_server: TunnelServer, radio: VirtualRadio, advertiser: BumbleAdvertiser
) -> None:
    """The phone 'scans' the PNG the CLI wrote (zbar), then answers; Fido2Server verifies."""
    rp = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    phone = SoftwareAuthenticator(verifies_user=True, approve=approve_all)
    tunnel = local_server.url
    tasks: list[asyncio.Task[object]] = []
    png = tmp_path / "qr.png"

    def scan(url: str) -> None:
        scanned = decode_qr_image(png)
        assert scanned == url
        tasks.append(asyncio.create_task(answer_qr(scanned, phone, advertiser, tunnel)))

    results = []
    for flags in (["--register", "--user", "alice"], []):
        args = build_parser().parse_args(
            [*flags, "--json", "--png", str(png), "--tunnel-url", tunnel, "--timeout", "20"]
        )
        options, state = (
            rp.register_begin(
                {"id": b"alice", "name": "alice", "displayName": "alice"},  # type: ignore[arg-type]
            )
            if flags
            else rp.authenticate_begin()
        )
        code, out, err = await run_on_radio(args, options, radio, scan)
        assert code == EXIT_OK
        await tasks[-1]
        results.append((state, json.loads(out)))
        assert "█" in err or "▀" in err
    auth_data = rp.register_complete(*results[0])
    assert auth_data.credential_data is not None
    rp.authenticate_complete(results[1][0], [auth_data.credential_data], results[1][1])


async def test_a_phone_named_to_clear_the_screen_cannot(
    local_server: TunnelServer,
    radio: VirtualRadio,
    advertiser: BumbleAdvertiser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The phone's linking name goes through on_status to the terminal, printable."""
    rp = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    phone = SoftwareAuthenticator(verifies_user=True, approve=approve_all)
    hostile = "\x1b[2J\x1b[HPixel\u202e\x9b9"
    tasks: list[asyncio.Task[object]] = []
    statuses: list[Status] = []
    terminal_status = TerminalUI.status

    def status(ui: TerminalUI, report: Status) -> None:
        statuses.append(report)
        terminal_status(ui, report)

    def scan(url: str) -> None:
        tasks.append(
            asyncio.create_task(
                answer_qr(url, phone, advertiser, local_server.url, link=True, name=hostile)
            )
        )

    monkeypatch.setattr(TerminalUI, "status", status)
    args = build_parser().parse_args(
        ["--register", "--tunnel-url", local_server.url, "--timeout", "20"]
    )
    options, state = rp.register_begin(
        {"id": b"alice", "name": "alice", "displayName": "alice"},  # type: ignore[arg-type]
    )
    code, out, err = await run_on_radio(args, options, radio, scan)
    await tasks[-1]
    assert code == EXIT_OK
    rp.register_complete(state, json.loads(out))
    linked = [s.message for s in statuses if s.stage is Stage.LINKED]
    assert linked == ["Linked with ?[2J?[HPixel??9"]
    assert "• Linked with ?[2J?[HPixel??9\n" in err
    assert not any(c in err for c in "\x1b\u202e\x9b")


async def test_plain_ws_to_another_host_is_a_warning_status(
    local_server: TunnelServer, radio: VirtualRadio, advertiser: BumbleAdvertiser
) -> None:
    """Warned before connecting; .invalid (RFC 6761) never resolves, so the connect fails."""
    statuses: list[Status] = []
    client = HybridClient(
        "https://example.com",
        tunnel_url="ws://tunnel.invalid:9",
        on_status=statuses.append,
        timeout=20,
        scanner_backend=BumbleScannerBackend,
        scanner_kwargs={"radio": radio},
    )
    phone = SoftwareAuthenticator(approve=approve_all)
    tasks: list[asyncio.Task[object]] = []

    def scan(url: str) -> None:
        tasks.append(
            asyncio.create_task(answer_qr(url, phone, advertiser, local_server.url, timeout=5))
        )

    with pytest.raises(TunnelError):
        await client.get_assertion({"challenge": "AAAAAAAAAAAAAAAAAAAAAA"}, scan)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    connecting = [s.message for s in statuses if s.stage is Stage.CONNECTING]
    assert connecting == [plaintext_warning("ws://tunnel.invalid:9"), "Connecting to the phone"]


async def test_prf_inputs_and_printed_outputs(
    local_server: TunnelServer, radio: VirtualRadio, advertiser: BumbleAdvertiser
) -> None:
    """`--prf` twice: both outputs printed, equal to the phone's HMAC computed here."""
    phone = SoftwareAuthenticator(approve=approve_all)
    tasks: list[asyncio.Task[object]] = []

    def scan(url: str) -> None:
        tasks.append(asyncio.create_task(answer_qr(url, phone, advertiser, local_server.url)))

    outputs = []
    for flags in (["--register", "--prf", "pässword"], ["--prf", "pässword", "--prf", "two"]):
        args = build_parser().parse_args([*flags, "--tunnel-url", local_server.url, "--json"])
        credential, err = await _run_in_process(args, generated_options(args), scan, radio, tasks)
        outputs.append((credential, err.splitlines()))
    (stored,) = phone.store.for_rp("example.com", None)
    assert stored.prf_secret is not None

    def expected(text: str) -> str:
        salt = hashlib.sha256(b"WebAuthn PRF\x00" + text.encode()).digest()
        return websafe_encode(hmac.new(stored.prf_secret or b"", salt, hashlib.sha256).digest())

    (registered, register_lines), (signed_in, sign_in_lines) = outputs
    assert registered["clientExtensionResults"]["prf"] == {
        "enabled": True,
        "results": {"first": expected("pässword")},
    }
    assert f"PRF first: {expected('pässword')}" in register_lines
    assert signed_in["clientExtensionResults"]["prf"]["results"] == {
        "first": expected("pässword"),
        "second": expected("two"),
    }
    assert sign_in_lines[-2:] == [
        f"PRF first: {expected('pässword')}",
        f"PRF second: {expected('two')}",
    ]
