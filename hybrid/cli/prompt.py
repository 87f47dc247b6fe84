"""The terminal approval prompt of the phone-role CLI: ask on stderr, read stdin.

A y/N answer (or `--yes`) shows presence only: anyone at the terminal can type "y". It is
never a user verification, so a request that needs one is declined without asking.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from typing import TextIO

from hybrid.authenticator.approval import ApprovalRequest
from hybrid.text import MAX_SITE_SHOWN, shown


def prompt_text(request: ApprovalRequest) -> str:
    """The question the user answers before a passkey is created or used."""
    site = shown(request.rp_id, "an unnamed site", limit=MAX_SITE_SHOWN)
    user = request.user_name or request.user_display_name
    if request.kind == "create":
        return f"Create a passkey for {shown(user, 'an unnamed account')} on {site}? [y/N] "
    if user is None:
        return f"Sign in to {site}? (no passkey for it is stored here) [y/N] "
    return f"Sign in to {site} as {shown(user, '')}? [y/N] "


async def read_line(stream: TextIO) -> str:
    """One line of `stream` without blocking the event loop; "" at end of input.

    A real file descriptor is read with `os.read` in a daemon thread: if the ceremony ends
    first (timeout, Ctrl-C) that thread is simply abandoned, holding no lock that would stop
    the interpreter from exiting. In-memory streams never block and are read directly.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream.readline()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()

    def deliver(line: str) -> None:
        if not done.done():
            done.set_result(line)

    def reader() -> None:
        data = b""
        with contextlib.suppress(OSError):
            while not data.endswith(b"\n") and (chunk := os.read(fd, 1)):
                data += chunk
        with contextlib.suppress(RuntimeError):  # the loop may be gone by now
            loop.call_soon_threadsafe(deliver, data.decode(errors="replace"))

    threading.Thread(target=reader, name="approval-prompt", daemon=True).start()
    return await done


class TerminalApprover:
    """Asks on stderr and reads the answer from stdin; remembers the last site asked about."""

    def __init__(self, assume_yes: bool) -> None:
        self.assume_yes = assume_yes
        self.rp_id: str | None = None

    async def __call__(self, request: ApprovalRequest) -> bool:
        self.rp_id = request.rp_id
        if request.user_verification:
            # Only a SoftwareAuthenticator(verifies_user=True) asks this; a y/N cannot verify.
            site = shown(request.rp_id, "the site", limit=MAX_SITE_SHOWN)
            print(
                f"Declined: {site} asks for user verification (PIN or biometric), which this "
                "terminal prompt cannot do.",
                file=sys.stderr,
                flush=True,
            )
            return False
        if self.assume_yes:
            return True
        print(prompt_text(request), end="", file=sys.stderr, flush=True)
        answer = await read_line(sys.stdin)
        if not answer.endswith("\n"):
            print(file=sys.stderr)  # end the prompt's line at end of input
        return answer.strip().lower() in ("y", "yes")
