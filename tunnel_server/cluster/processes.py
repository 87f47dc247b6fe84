"""Child processes that can never outlive the supervisor.

Each child runs in its own session (a Ctrl-C at the terminal reaches only the supervisor, which
then stops the children in the right order) and, on Linux, asks the kernel for SIGTERM when the
supervisor dies, so even a SIGKILLed supervisor leaves no orphan behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import re
import signal
import sys
from collections.abc import Callable, Sequence

from .errors import ClusterError, ClusterReason

_PR_SET_PDEATHSIG = 1
_LISTENING = re.compile(rb"listening on wss?://\S+:(\d+)")


def _death_signal_hook() -> Callable[[], None] | None:
    """A preexec function that makes the kernel SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    prctl = libc.prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


_HOOK = _death_signal_hook()


async def spawn(argv: Sequence[str], *, stderr: int | None = None) -> asyncio.subprocess.Process:
    """Start `argv` in its own session with stdout piped (stderr inherited unless given)."""
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_HOOK,
    )


async def read_port(proc: asyncio.subprocess.Process, what: str, timeout: float) -> int:
    """The port from a tunnel server's `listening on …` line; `ClusterError` if none comes."""
    assert proc.stdout is not None
    line = b""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            line = await proc.stdout.readline()
    match = _LISTENING.match(line.strip())
    if match is not None:
        return int(match[1])
    if line == b"":  # it closed stdout: it is exiting
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await proc.wait()
    outcome = (
        f"did not start within {timeout:g} s"
        if proc.returncode is None
        else f"exited at start with code {proc.returncode}"
    )
    raise ClusterError(
        ClusterReason.NODE_FAILED,
        f"{what} {outcome}: fix the cause in its messages above (a node flag after --, or "
        "its port being taken).",
    )


def send(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Send `sig` unless the process is already gone."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


async def wait_or_kill(proc: asyncio.subprocess.Process, timeout: float) -> int:
    """Wait up to `timeout` seconds for `proc` to exit, then SIGKILL it; return its exit code."""
    try:
        async with asyncio.timeout(timeout):
            return await proc.wait()
    except TimeoutError:
        send(proc, signal.SIGKILL)
        return await proc.wait()


async def stop(proc: asyncio.subprocess.Process, timeout: float) -> int:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL."""
    send(proc, signal.SIGTERM)
    return await wait_or_kill(proc, timeout)
