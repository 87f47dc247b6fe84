"""`python -m hybrid.qr`: real subprocesses for the edges, in-process for a full ceremony."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity

from hybrid.authenticator import SoftwareAuthenticator, answer_qr, approve_all
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.cli.common import EXIT_BLUETOOTH, EXIT_OK, EXIT_USAGE
from hybrid.cli.desktop import build_parser, run
from hybrid.qr import decode_qr_image
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
        assert code == EXIT_OK
        await tasks[-1]
        results.append((state, json.loads(out.getvalue())))
        assert "█" in err.getvalue() or "▀" in err.getvalue()
    auth_data = rp.register_complete(*results[0])
    assert auth_data.credential_data is not None
    rp.authenticate_complete(results[1][0], [auth_data.credential_data], results[1][1])
