"""`python -m hybrid.bridge` as a real process on a kernel with uhid (run inside the VM)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

from hybrid.bridge import check

#: A new Python process under the VM's emulated CPU takes seconds to import what it needs.
START_TIMEOUT = 300.0


async def test_check_passes_the_uhid_and_display_checks_here() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hybrid.bridge",
        "--check",
        "--qr",
        "terminal",
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), START_TIMEOUT)
    lines = stdout.decode().splitlines()
    assert lines[0].startswith("ok   uhid: ")
    assert lines[1].startswith("ok   display: ")
    # The VM has no Bluetooth adapter: that is the only thing --check may report
    assert process.returncode in (check.EXIT_READY, check.EXIT_BLUETOOTH)
    assert lines[2].startswith("ok   bluetooth" if process.returncode == 0 else "FAIL bluetooth: ")


async def test_the_daemon_plugs_in_a_key_and_sigterm_unplugs_it() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hybrid.bridge",
        "--qr",
        "terminal",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        plugged = re.search(r"plugged in as (/dev/hidraw\d+)", line.decode())
        assert plugged, line
        node = plugged[1]
        assert os.path.exists(node)
        process.send_signal(signal.SIGTERM)
        rest, stderr = await asyncio.wait_for(process.communicate(), START_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert b"unplugged" in rest
    assert not os.path.exists(node)
