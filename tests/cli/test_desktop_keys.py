"""`python -m hybrid.qr` with USB security keys: `--transport`, the PIN prompt, exit codes."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)

from hybrid.authenticator import SoftwareSecurityKey
from hybrid.cli.common import EXIT_BLUETOOTH, EXIT_OK, EXIT_TIMEOUT, run_main
from hybrid.cli.desktop import EXIT_REFUSED, build_parser, run
from hybrid.cli.pin import terminal_pin
from hybrid.desktop import HybridClient
from hybrid.errors import CtapStatusError
from hybrid.status import Stage
from tests.e2e.keys import Person, UsbPort, ceremony_threads

ALICE = PublicKeyCredentialUserEntity(id=b"alice", name="alice", display_name="Alice")
REQUIRED = UserVerificationRequirement.REQUIRED


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "hybrid.qr", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_keys_only_without_a_key_times_out_rather_than_blaming_bluetooth(tmp_path: Path) -> None:
    result = _cli("--transport", "usb", "--timeout", "1", tmp_path=tmp_path)
    assert result.returncode == EXIT_TIMEOUT, result.stderr
    assert "Insert your security key" in result.stderr and "Scan this code" not in result.stderr


def test_phone_only_without_bluetooth_exits_3(tmp_path: Path) -> None:
    result = _cli("--transport", "hybrid", tmp_path=tmp_path)
    assert result.returncode == EXIT_BLUETOOTH


def test_unknown_transport_is_a_usage_error(tmp_path: Path) -> None:
    assert _cli("--transport", "nfc", tmp_path=tmp_path).returncode == 2


async def test_register_and_sign_in_with_a_pin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The PIN is asked with getpass (the terminal is the edge faked here), on stderr."""
    prompts: list[str] = []

    def typed(prompt: str, stream: object = None) -> str:
        prompts.append(prompt)
        return "2468"

    monkeypatch.setattr("getpass.getpass", typed)
    rp = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))

    async def ceremony(key: SoftwareSecurityKey, flags: list[str], options: Any) -> Any:
        args = build_parser().parse_args([*flags, "--transport", "usb", "--timeout", "20"])
        out, err = io.StringIO(), io.StringIO()
        code = await run(args, dict(options["publicKey"]), out, err, security_keys=UsbPort(key))
        assert code == EXIT_OK, err.getvalue()
        assert "Enter the PIN" in err.getvalue()
        return json.loads(out.getvalue())

    with SoftwareSecurityKey.with_store(pin="2468") as key:
        options, state = rp.register_begin(ALICE, user_verification=REQUIRED)
        registration = await ceremony(key, ["--register"], options)
        assert registration["response"]["transports"] == ["usb"]
        credential = rp.register_complete(state, registration).credential_data
        assert credential is not None
        request, state = rp.authenticate_begin([credential], user_verification=REQUIRED)
        rp.authenticate_complete(state, [credential], await ceremony(key, [], request))
    assert prompts == ["Security key PIN: ", "Security key PIN: "]


def test_key_without_a_passkey_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["--transport", "usb", "--timeout", "20"])
    out = io.StringIO()
    with SoftwareSecurityKey.with_store() as key:
        ceremony = run(
            args,
            {"challenge": "AAAAAAAAAAAAAAAAAAAAAA", "rpId": "example.com"},
            out,
            sys.stderr,
            security_keys=UsbPort(key),
        )
        code = run_main(ceremony, verbose=False, own=(CtapStatusError,))
    assert code == EXIT_REFUSED and out.getvalue() == ""
    assert "This security key has no passkey for example.com" in capsys.readouterr().err


async def test_cancel_at_the_pin_prompt_does_not_wait_for_enter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enter = threading.Event()

    def nobody_types(prompt: str, stream: object = None) -> str:
        enter.wait(10)
        return "2468"

    monkeypatch.setattr("getpass.getpass", nobody_types)
    rp = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    options, _ = rp.register_begin(ALICE, user_verification=REQUIRED)
    person = Person()
    try:
        with SoftwareSecurityKey.with_store(pin="2468", touch=person.touch) as key:
            client = HybridClient(
                "https://example.com",
                on_status=person,
                transports=("usb",),
                security_keys=UsbPort(key),
                on_pin=terminal_pin(io.StringIO()),
            )
            ceremony = asyncio.create_task(
                client.make_credential(dict(options["publicKey"]), print)
            )
            while not person.of(Stage.ENTER_PIN):
                await asyncio.sleep(0.02)
            ceremony.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(ceremony, 5)
            assert ceremony_threads() == []  # the key's thread is joined; only the prompt waits
    finally:
        enter.set()
