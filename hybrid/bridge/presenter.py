"""What the user sees while the bridge asks the phone: the request, the QR code, the stages.

`Presenter` is what the bridge calls; `TerminalPresenter` draws into the daemon's terminal
(`--qr terminal`, for SSH and headless use), `hybrid.bridge.window.WindowPresenter` opens a
window. Everything shown that came from a program (the rpId) is made printable first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol, TextIO

from hybrid.qr.render import render_terminal
from hybrid.status import Status
from hybrid.text import shown

from .request import BridgeRequest

#: Cancels the ceremony shown now (the Cancel button), as CTAPHID_CANCEL would.
Cancel = Callable[[], None]


class Presenter(Protocol):
    """The bridge's face: told when a request starts, what to show, how it goes, when it ends."""

    def request_started(self, request: BridgeRequest, cancel: Cancel) -> None: ...

    def show_qr(self, url: str) -> None: ...

    def status(self, status: Status) -> None: ...

    def request_ended(self, outcome: str) -> None: ...

    def notice(self, text: str) -> None:
        """Something the user should know outside any ceremony (e.g. why a sign-in failed)."""
        ...

    def close(self) -> None: ...


class TerminalPresenter:
    """Draws each request's QR code and stages as lines in a terminal (Ctrl-C quits)."""

    def __init__(self, out: TextIO | None = None, *, ascii_only: bool = False) -> None:
        self.out = out or sys.stdout
        self.ascii_only = ascii_only

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def request_started(self, request: BridgeRequest, cancel: Cancel) -> None:
        self._line(f"\n{request.title}")

    def show_qr(self, url: str) -> None:
        self._line("Scan this QR code with your phone's camera:")
        art = render_terminal(url, invert=True, ascii_only=self.ascii_only)
        print(art, file=self.out, end="", flush=True)

    def status(self, status: Status) -> None:
        self._line(f"  {shown(status.message, status.stage.value)}")

    def request_ended(self, outcome: str) -> None:
        self._line(f"  {outcome}")

    def notice(self, text: str) -> None:
        self._line(f"\nNote: {text}")

    def close(self) -> None:
        pass
