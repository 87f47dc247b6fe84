"""A real browser through the bridge: Firefox ESR, headless in the VM, registers and signs in
on a localhost page with the software phone answering through the bridge's uhid key, each
result verified by `Fido2Server` (`firefox_bridge_guest.py` runs inside the VM)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.vm.harness import require_vm, run_in_vm

pytestmark = pytest.mark.vm

#: Under QEMU's emulated CPU on 2 shared cores Firefox takes 45-70 s to start; each phone
#: ceremony takes seconds more.
WAIT = 600


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    require_vm("firefox-esr")
    result = run_in_vm(f"python -m tests.vm.firefox_bridge_guest {WAIT}", timeout=WAIT + 300)
    assert result.returncode == 0, f"guest failed ({result.accel}):\n{result.stderr[-6000:]}"
    seen: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["finished"], json.dumps(seen, indent=1)
    return seen


def test_firefox_registers_with_the_phone(report: dict[str, Any]) -> None:
    registered = report["steps"]["register"]
    assert registered["ok"] is True, registered
    assert registered["uv"] is True  # the phone verified the user and said so in signed data
    assert report["requests"][0] == ["mc", "localhost"]


def test_firefox_signs_in_discoverably_with_one_phone_ceremony(report: dict[str, Any]) -> None:
    assert report["steps"]["discoverable"]["ok"] is True, report["steps"]["discoverable"]
    assert report["requests"][1] == ["ga", "localhost"]


def test_firefox_sign_in_with_an_allow_list_is_declined_then_takes_two_steps(
    report: dict[str, Any],
) -> None:
    first = report["steps"]["allow_list_first_try"]
    assert first.get("name") == "NotAllowedError", first  # no made-up answer to its probe
    assert len(report["notices"]) == 1  # ... and the user is told why and what to do
    second = report["steps"]["allow_list_second_try"]
    assert second["ok"] is True, second
    # register, discoverable, then the retry's probe and its real request: 4 phone ceremonies
    assert report["qr_codes"] == 4
    assert report["steps"]["done"]["secureContext"] is True
