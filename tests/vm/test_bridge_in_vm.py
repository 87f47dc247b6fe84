"""The bridge on a real kernel HID stack: `tests/uhid` run inside a VM booted from Debian's
kernel (uhid, hidraw), with python-fido2's unmodified Linux backend as the program.

One boot runs the whole directory; each inner test's outcome is checked here, so a failure
names the test and shows its output.
"""

from __future__ import annotations

import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.vm.harness import require_vm, run_in_vm

pytestmark = pytest.mark.vm

#: Boot plus the inner tests under QEMU's emulated CPU (4-6 min on a loaded 2-core host; a
#: bound against a hang, not a target).
TIMEOUT = 2400.0
#: What tests/uhid holds; an inner test that silently vanished would fail this.
EXPECTED = {
    "test_python_fido2_registers_and_signs_in_over_hidraw",
    "test_cancel_and_phone_never_found_over_hidraw",
    "test_malformed_reports_get_ctaphid_errors_and_the_device_stays_up",
    "test_a_program_vanishing_mid_request_cancels_the_ceremony",
    "test_a_second_program_gets_channel_busy_while_the_phone_works",
    "test_check_passes_the_uhid_and_display_checks_here",
    "test_the_daemon_plugs_in_a_key_and_sigterm_unplugs_it",
}


def test_uhid_tests_pass_inside_the_vm() -> None:
    require_vm()
    with tempfile.TemporaryDirectory(prefix="uhid-results-") as results:
        report = Path(results, "junit.xml")
        done = run_in_vm(
            f"python -m pytest -p no:cacheprovider -q tests/uhid --junitxml={report}",
            timeout=TIMEOUT,
            rwdirs=[results],
        )
        assert report.exists(), f"no report from the VM:\n{done.stdout}\n{done.stderr}"
        outcomes = {
            case.attrib["name"]: [child.tag for child in case] or ["passed"]
            for case in ET.parse(report).iter("testcase")
        }
    assert set(outcomes) == EXPECTED, done.stdout
    failed = {name: tags for name, tags in outcomes.items() if tags != ["passed"]}
    assert not failed, f"{failed}\n{done.stdout[-6000:]}"
    assert re.search(r"\b7 passed\b", done.stdout), done.stdout
    assert done.returncode == 0
