"""The kernel stack the virtual security key stands on, proven in a VM (tests/vm/harness.py).

One boot runs `uhid_guest.py`, which creates a FIDO device on /dev/uhid and reports what each
end saw; the tests below read that report. Facts pinned here that `hybrid.bridge.uhid` relies on:
a write to the hidraw node arrives as UHID_OUTPUT with the report-ID byte 0 in front (65 bytes
for a 64-byte packet), while UHID_INPUT2 takes the bare 64 bytes and hidraw reads return them
as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.vm.harness import require_vm, run_in_vm

pytestmark = pytest.mark.vm

GUEST = Path(__file__).with_name("uhid_guest.py")
PACKET = bytes(range(1, 65))
REPLY = bytes(range(101, 165))


@pytest.fixture(scope="module")
def seen() -> dict[str, Any]:
    require_vm()
    result = run_in_vm(f"python {GUEST}", timeout=300)
    assert result.returncode == 0, f"guest failed ({result.accel}):\n{result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_create2_takes_the_whole_packed_event(seen: dict[str, Any]) -> None:
    assert seen["create_written"] == seen["uhid_event_size"] == 4380


def test_kernel_makes_the_hidraw_node_without_udev(seen: dict[str, Any]) -> None:
    assert seen["hidraw"].startswith("/dev/hidraw")
    assert seen["hidraw_is_char_device"]
    assert seen["hidraw_gone_after_destroy"]


def test_python_fido2_lists_the_device_as_a_fido_key(seen: dict[str, Any]) -> None:
    assert seen["usage_page"] == 0xF1D0
    assert seen["fido2_listed"] == [
        {
            "path": seen["hidraw"],
            "vid": 0x1234,
            "pid": 0x5678,
            "report_size_in": 64,
            "report_size_out": 64,
            "product_name": "fido-hybrid VM key",
        }
    ]


def test_hidraw_write_arrives_as_output_with_report_id_zero_in_front(
    seen: dict[str, Any],
) -> None:
    assert seen["hidraw_write_returned"] == 65
    assert seen["output_rtype"] == 1  # UHID_OUTPUT_REPORT
    assert seen["output_size"] == 65
    assert bytes.fromhex(seen["output_data_hex"]) == b"\0" + PACKET


def test_input2_bare_packet_is_read_from_hidraw_as_is(seen: dict[str, Any]) -> None:
    assert bytes.fromhex(seen["hidraw_read_hex"]) == REPLY
