"""Headless Firefox ESR runs in the VM and a test can read a value out of a localhost page.

The groundwork for driving WebAuthn in a real browser against the bridge's uhid key: one boot
runs `firefox_guest.py`, which serves a page on 127.0.0.1 inside the guest and waits for the
page's script to POST its result back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.vm.harness import require_vm, run_in_vm

pytestmark = pytest.mark.vm

GUEST = Path(__file__).with_name("firefox_guest.py")
#: Under TCG on 2 shared cores Firefox needs 45-70 s to start and load the page.
PAGE_WAIT = 300


@pytest.fixture(scope="module")
def seen() -> dict[str, Any]:
    require_vm("firefox-esr")
    result = run_in_vm(f"python {GUEST} {PAGE_WAIT}", timeout=PAGE_WAIT + 180)
    assert result.returncode == 0, f"guest failed ({result.accel}):\n{result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_firefox_loads_a_localhost_page_and_its_script_reports_back(
    seen: dict[str, Any],
) -> None:
    assert seen["posted_in_time"], seen["firefox_output_tail"]
    assert seen["posted"]["sum"] == 6
    assert "Firefox/" in seen["posted"]["userAgent"]


def test_localhost_is_a_secure_context_with_webauthn(seen: dict[str, Any]) -> None:
    assert seen["posted"]["secureContext"] is True
    assert seen["posted"]["publicKeyCredential"] == "function"
