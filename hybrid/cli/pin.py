"""Asking a security key's PIN on the terminal (`getpass`, not echoed) without hanging Ctrl-C.

`getpass` blocks until Enter, so it runs on a daemon thread: when the ceremony ends first
(Ctrl-C, timeout) the prompt is abandoned, the terminal's echo is put back as it was, and the
process can exit; the key's own thread is cancelled and joined as always.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TextIO

PROMPT = "Security key PIN: "


@contextlib.contextmanager
def _terminal_restored_on_abandon() -> Iterator[None]:
    """Put the terminal's settings back if the block is left by cancellation."""
    saved: tuple[int, list[Any]] | None = None
    with contextlib.suppress(ImportError, OSError):
        import termios

        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
        saved = (fd, termios.tcgetattr(fd))
    try:
        yield
    except asyncio.CancelledError:
        if saved is not None:
            with contextlib.suppress(ImportError, OSError):
                import termios

                termios.tcsetattr(saved[0], termios.TCSAFLUSH, saved[1])
        raise
    finally:
        if saved is not None:
            os.close(saved[0])


def terminal_pin(err: TextIO) -> Callable[[], Coroutine[Any, Any, str | None]]:
    """`on_pin` for `HybridClient`: the PIN typed on the terminal, prompt on `err`."""

    async def ask_pin() -> str | None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str | None] = loop.create_future()

        def deliver(pin: str | None) -> None:
            if not answer.done():
                answer.set_result(pin)

        def read() -> None:
            pin: str | None = None
            with contextlib.suppress(EOFError, OSError):
                pin = getpass.getpass(PROMPT, stream=err)
            with contextlib.suppress(RuntimeError):  # the loop may be gone by now
                loop.call_soon_threadsafe(deliver, pin or None)

        with _terminal_restored_on_abandon():
            threading.Thread(target=read, name="pin-prompt", daemon=True).start()
            return await answer

    return ask_pin
