"""`python -m hybrid.bridge`: `--check` and start-up failures, as real subprocesses.

This sandbox's kernel has no uhid, which is exactly the "no /dev/uhid" case; the daemon
running for real is tested in the VM (tests/uhid, tests/vm).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bleak.exc import BleakBluetoothNotAvailableReason

from hybrid.bridge import check
from hybrid.errors import BluetoothReason, BridgeReason


def _bridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybrid.bridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_check_names_each_problem_and_exits_with_the_first_ones_code(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = _bridge("--check", "--uhid", str(tmp_path / "uhid"), env=env)
    lines = done.stdout.splitlines()
    assert done.returncode == check.EXIT_UHID
    assert lines[0].startswith("FAIL uhid: ")
    assert lines[1].startswith("FAIL display: ")
    assert lines[2].startswith(("ok   bluetooth", "FAIL bluetooth: "))


def test_the_daemon_without_uhid_says_what_to_do(tmp_path: Path) -> None:
    done = _bridge("--qr", "terminal", "--uhid", str(tmp_path / "uhid"))
    assert done.returncode == 5
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1  # one line of advice, no log noise


def test_usage_errors() -> None:
    assert _bridge("--qr", "paper").returncode == 2
    assert _bridge("--timeout", "nan").returncode == 2


def test_uhid_findings_carry_their_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = check.check_uhid(str(tmp_path / "uhid"))
    assert (missing.ok, missing.reason, missing.exit_code) == (
        False,
        BridgeReason.NO_UHID,
        check.EXIT_UHID,
    )
    assert check.check_uhid(str(tmp_path)).reason == BridgeReason.UHID_FAILED  # a directory

    def denied(path: str, flags: int) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)  # root here: the kernel would not say no
    refused = check.check_uhid("/dev/uhid")
    assert refused.reason == BridgeReason.UHID_DENIED


def test_display_findings() -> None:
    assert check.check_display("terminal", {}).ok
    headless = check.check_display("window", {})
    assert (headless.reason, headless.exit_code) == (BridgeReason.NO_DISPLAY, check.EXIT_DISPLAY)
    assert check.check_display("window", {"DISPLAY": ":0"}).ok


async def test_bluetooth_finding_is_quick_and_carries_bleak_s_reason() -> None:
    from hybrid.ble.bumble_backend import BumbleScannerBackend
    from hybrid.ble.bumble_radio import VirtualRadio

    async with VirtualRadio() as radio:
        fine = await check.check_bluetooth(BumbleScannerBackend, {"radio": radio})
        off = await check.check_bluetooth(
            BumbleScannerBackend,
            {"radio": radio, "unavailable": BleakBluetoothNotAvailableReason.POWERED_OFF},
        )
    assert fine.ok and fine.exit_code == check.EXIT_READY
    assert (off.ok, off.exit_code, off.reason) == (
        False,
        check.EXIT_BLUETOOTH,
        BluetoothReason.POWERED_OFF,
    )
