"""A real X server (Xvfb) for tests that open windows, and the rule for missing tools.

Xvfb is started with `-displayfd`: it picks a free display number itself (under its lock
file, so parallel runs on one machine cannot take the same number) and writes it down once
it accepts connections; the socket is then checked by connecting to it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import pytest

SCREEN: Final = "1024x768x24"
#: Generous: a loaded CI machine may take seconds to start a server.
START_TIMEOUT: Final = 30.0
_SOCKETS: Final = Path("/tmp/.X11-unix")


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def need(available: bool, what: str) -> None:
    """Skip loudly when `what` is missing here; fail under CI, which must have it."""
    if available:
        return
    if under_ci():
        pytest.fail(f"{what}; CI must provide it")
    pytest.skip(f"NOT TESTED, {what}")


@dataclass(frozen=True)
class XServer:
    number: int

    @property
    def display(self) -> str:
        return f":{self.number}"


@contextlib.contextmanager
def running_xvfb() -> Iterator[XServer]:
    """An Xvfb on a free display, accepting connections; stopped on exit."""
    program = shutil.which("Xvfb")
    need(program is not None, "Xvfb is not installed (Debian: apt-get install xvfb)")
    assert program is not None
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [program, "-displayfd", str(write_end), "-screen", "0", SCREEN, "-nolisten", "tcp"],
            pass_fds=(write_end,),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        os.close(write_end)
        try:
            number = _read_display_number(read_end, process, log)
            _wait_for_socket(number, process)
            yield XServer(number)
        finally:
            os.close(read_end)
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _read_display_number(read_end: int, process: subprocess.Popen[bytes], log: IO[bytes]) -> int:
    """Xvfb writes "N\\n" when it is ready; EOF first means it died."""
    text = b""
    deadline = time.monotonic() + START_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(read_end, selectors.EVENT_READ)
        while not text.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                pytest.fail(f"Xvfb gave no display number within {START_TIMEOUT:g} s")
            chunk = os.read(read_end, 16)
            if not chunk:
                process.wait(10)
                log.seek(0)
                pytest.fail(f"Xvfb exited ({process.returncode}): {log.read().decode()[-2000:]}")
            text += chunk
    return int(text)


def _wait_for_socket(number: int, process: subprocess.Popen[bytes]) -> None:
    path = _SOCKETS / f"X{number}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
                return
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Xvfb :{number} does not accept connections at {path}: {exc}")
        time.sleep(0.05)


def unused_display() -> str:
    """A display name no server answers on (no socket, no lock file)."""
    for number in range(500, 1000):
        if not (_SOCKETS / f"X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return f":{number}"
    raise AssertionError("every display from :500 to :999 is taken")
