"""The QR code window's widgets; everything here runs on the window's own Tk thread.

`hybrid.bridge.window.WindowPresenter` owns the thread and hands this view its work; Tk
objects may only be touched from the thread that made them, so nothing else imports this.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from tkinter import font as tkfont
from typing import Final

from hybrid.qr.render import QUIET_ZONE, make_qr

WINDOW_TITLE: Final = "fido-hybrid: use your phone"
#: Shown in place of the code once the phone answered: the code is spent, scanning it again
#: would only confuse.
CONNECTED_TEXT: Final = "Connected to your phone…"
#: About how wide the code is drawn, quiet zone included: big enough for any phone camera
#: at arm's length, small enough for a laptop screen.
QR_TARGET_PX: Final = 300
NOTICE_HEADING: Final = "fido-hybrid phone bridge"
#: A notice stays up this many times longer than a finished request: there is more to read.
NOTICE_LONGER: Final = 4
#: A module is at least this many pixels, so that a very long URL still scans.
MIN_MODULE_PX: Final = 3
#: How long the window stays above all others when it asks for attention (ms).
TOPMOST_MS: Final = 1500
_TEXT_WIDTH_PX: Final = 440


@dataclass(frozen=True)
class QrDrawing:
    """A QR code as black rectangles on a white square `size` pixels wide (quiet zone in)."""

    size: int
    module: int
    #: (x0, y0, x1, y1) of each run of dark modules in a row, in pixels, x1/y1 exclusive.
    rectangles: tuple[tuple[int, int, int, int], ...]


def qr_drawing(url: str, target: int = QR_TARGET_PX) -> QrDrawing:
    """Lay `url`'s code out in pixels; `ProtocolError` if it is no hybrid QR URL."""
    modules: Sequence[Sequence[bool | None]] = make_qr(url).modules
    total = len(modules) + 2 * QUIET_ZONE
    module = max(MIN_MODULE_PX, target // total)
    rectangles: list[tuple[int, int, int, int]] = []
    for row, cells in enumerate(modules):
        y = (row + QUIET_ZONE) * module
        col = 0
        while col < len(cells):
            if not cells[col]:
                col += 1
                continue
            start = col
            while col < len(cells) and cells[col]:
                col += 1
            x0, x1 = (start + QUIET_ZONE) * module, (col + QUIET_ZONE) * module
            rectangles.append((x0, y, x1, y + module))
    return QrDrawing(total * module, module, tuple(rectangles))


@dataclass(frozen=True)
class WindowSnapshot:
    """What the window shows right now, read back from its widgets (for tests and checks)."""

    title: str
    heading: str
    qr_shown: bool
    #: Text drawn where the code goes ("" while the code or nothing is shown).
    qr_text: str
    status: str
    outcome: str
    cancel_enabled: bool
    #: The window is on screen (mapped), not withdrawn.
    mapped: bool
    #: The request ended and the window hides when `HIDE_AFTER` runs out.
    hide_pending: bool


class WindowView:
    """The window: a big heading, the code, a status line, the outcome and a Cancel button.

    `cancel` given to `start_request` is called at most once per request, from this thread:
    the presenter wraps it so that it runs on the event loop.
    """

    def __init__(self, root: tk.Tk, hide_after_ms: int) -> None:
        self.root = root
        self.hide_after_ms = hide_after_ms
        self._cancel: Callable[[], None] | None = None
        self._hide_job: str | None = None
        self._untop_job: str | None = None

        root.withdraw()  # before the first idle redraw, so it never flashes up empty
        root.title(WINDOW_TITLE)
        root.resizable(False, False)
        root.protocol("WM_DELETE_WINDOW", self._closed_by_user)
        base = tkfont.nametofont("TkDefaultFont", root=root)
        self._heading_font = base.copy()
        self._heading_font.configure(size=16, weight="bold")
        self._text_font = base.copy()
        self._text_font.configure(size=12)

        frame = tk.Frame(root, padx=20, pady=16)
        frame.pack(fill="both", expand=True)
        self.heading = tk.Label(
            frame, font=self._heading_font, wraplength=_TEXT_WIDTH_PX, justify="center"
        )
        self.heading.pack(pady=(0, 12))
        self.canvas = tk.Canvas(
            frame,
            width=QR_TARGET_PX,
            height=QR_TARGET_PX,
            background="white",
            highlightthickness=0,
            borderwidth=0,
        )
        self.canvas.pack()
        self.status = tk.Label(
            frame, font=self._text_font, wraplength=_TEXT_WIDTH_PX, justify="center"
        )
        self.status.pack(pady=(12, 0))
        self.outcome = tk.Label(
            frame, font=self._heading_font, wraplength=_TEXT_WIDTH_PX, justify="center"
        )
        self.outcome.pack(pady=(8, 0))
        self.cancel_button = tk.Button(
            frame, text="Cancel", font=self._text_font, command=self._cancel_pressed
        )
        self.cancel_button.pack(pady=(12, 0))
        self._reset("", None)

    def start_request(self, heading: str, cancel: Callable[[], None]) -> None:
        """A new request: its heading, no code yet, Cancel on; the window comes up."""
        self._reset(heading, cancel)
        self._present()

    def show_qr(self, drawing: QrDrawing) -> None:
        self._clear_canvas(drawing.size)
        for x0, y0, x1, y1 in drawing.rectangles:
            # width=0: no outline, so a rectangle covers exactly [x0, x1) x [y0, y1).
            self.canvas.create_rectangle(x0, y0, x1, y1, fill="black", width=0, tags="qr")
        self._present()

    def show_status(self, text: str, connected: bool) -> None:
        self.status.configure(text=text)
        if connected and self.canvas.find_withtag("qr"):
            size = int(self.canvas.cget("width"))
            self._clear_canvas(size)
            self.canvas.create_text(
                size // 2,
                size // 2,
                text=CONNECTED_TEXT,
                font=self._heading_font,
                width=size - 20,
                justify="center",
                tags="message",
            )

    def end_request(self, outcome: str) -> None:
        """Show how it went, turn Cancel off and hide the window a little later."""
        self.outcome.configure(text=outcome)
        self._cancel = None
        self.cancel_button.configure(state="disabled")
        self._unschedule(self._hide_job)
        self._hide_job = self.root.after(self.hide_after_ms, self._hide)

    def show_notice(self, text: str) -> None:
        """A message outside any request (why a sign-in failed): up, then hidden later."""
        self._reset(NOTICE_HEADING, None)
        self.outcome.configure(text=text)
        self._present()
        self._hide_job = self.root.after(self.hide_after_ms * NOTICE_LONGER, self._hide)

    def press_cancel(self) -> None:
        """Press Cancel as a user would (a disabled button does nothing)."""
        self.cancel_button.invoke()

    def snapshot(self) -> WindowSnapshot:
        self.root.update_idletasks()
        messages = self.canvas.find_withtag("message")
        return WindowSnapshot(
            title=self.root.title(),
            heading=str(self.heading.cget("text")),
            qr_shown=bool(self.canvas.find_withtag("qr")),
            qr_text=self._item_text(messages[0]) if messages else "",
            status=str(self.status.cget("text")),
            outcome=str(self.outcome.cget("text")),
            cancel_enabled=str(self.cancel_button.cget("state")) != "disabled",
            mapped=bool(self.root.winfo_ismapped()),
            hide_pending=self._hide_job is not None,
        )

    def _item_text(self, item: int) -> str:
        # Canvas.itemcget has no type annotations in typeshed; this is the same Tk command.
        return str(self.canvas.tk.call(str(self.canvas), "itemcget", item, "-text"))

    def _reset(self, heading: str, cancel: Callable[[], None] | None) -> None:
        self._unschedule(self._hide_job)
        self._hide_job = None
        self._cancel = cancel
        self.heading.configure(text=heading)
        self.status.configure(text="")
        self.outcome.configure(text="")
        self.cancel_button.configure(state="normal" if cancel else "disabled")
        self._clear_canvas(QR_TARGET_PX)

    def _clear_canvas(self, size: int) -> None:
        self.canvas.delete("all")
        self.canvas.configure(width=size, height=size)

    def _present(self) -> None:
        """Bring the window up, in front and focused: a request is waiting for the user.

        `-topmost` for a moment, because window managers may refuse a plain raise from a
        program the user is not looking at.
        """
        self.root.deiconify()
        self.root.lift()
        self.root.attributes("-topmost", True)
        self._unschedule(self._untop_job)
        self._untop_job = self.root.after(TOPMOST_MS, self._untop)
        self.root.focus_force()

    def _untop(self) -> None:
        self._untop_job = None
        self.root.attributes("-topmost", False)

    def _hide(self) -> None:
        self._hide_job = None
        self.root.withdraw()

    def _unschedule(self, job: str | None) -> None:
        if job is not None:
            self.root.after_cancel(job)

    def _cancel_pressed(self) -> None:
        cancel, self._cancel = self._cancel, None
        self.cancel_button.configure(state="disabled")
        if cancel is not None:
            self.status.configure(text="Cancelling…")
            cancel()

    def _closed_by_user(self) -> None:
        """The window manager's close button: cancel what runs and hide until the next one."""
        self._cancel_pressed()
        self._unschedule(self._hide_job)
        self._hide()
