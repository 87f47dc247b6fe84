"""`WindowPresenter`: the bridge's QR code window, a Tk window on its own thread.

The bridge calls the presenter on its asyncio event loop, which must never wait for a
window; Tk must only be touched from the thread that created it. So Tk gets a dedicated
thread running its own `mainloop`, and every call becomes a command on a queue that the Tk
thread drains every `POLL_MS` (`after`). A queue rather than `event_generate`: it needs no
threaded Tcl build and carries Python objects, not strings. The Cancel button goes back the
other way with `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Final, TypeVar

from hybrid.errors import BridgeError, BridgeReason
from hybrid.status import Stage, Status
from hybrid.text import shown

from .presenter import Cancel
from .request import BridgeRequest

if TYPE_CHECKING:
    from .window_view import WindowSnapshot, WindowView

#: Seconds the outcome stays on screen before the window hides.
HIDE_AFTER: Final = 3.0
#: How often the Tk thread looks for work (ms): quick enough to feel instant.
POLL_MS: Final = 25
#: Seconds to wait for Tk to open the display (a remote X server may be slow, or gone).
START_TIMEOUT: Final = 15.0
#: Seconds `close` waits for the Tk thread, and test hooks for an answer from it.
STOP_TIMEOUT: Final = 10.0
#: Stages at which the phone has answered: the code is spent.
CONNECTED_STAGES: Final = frozenset(
    {Stage.PHONE_FOUND, Stage.CONNECTING, Stage.WAITING_FOR_USER, Stage.LINKED, Stage.DONE}
)
#: Status lines and outcomes are whole sentences with advice: shown whole, not cut at 80.
MAX_LINE_SHOWN: Final = 600

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_Command = Callable[["WindowView"], None]


class WindowPresenter:
    """Shows each request's QR code and progress in a window; a `Presenter`.

    Every method returns at once (the window is updated shortly after, on its thread).
    Raises `BridgeError(NO_DISPLAY)` when there is no display or no Tk to draw with.
    """

    def __init__(self, *, hide_after: float = HIDE_AFTER) -> None:
        try:
            import tkinter  # noqa: F401
        except ImportError as exc:  # Python built without _tkinter (no python3-tk / tk-dev)
            raise BridgeError(BridgeReason.NO_DISPLAY, f"tkinter is missing: {exc}") from None
        self._commands: queue.SimpleQueue[_Command | None] = queue.SimpleQueue()
        self._closed = False
        started: Future[str | None] = Future()
        self._thread = threading.Thread(
            target=self._run,
            args=(round(hide_after * 1000), started),
            name="hybrid-bridge-window",
            daemon=True,  # a Tk stuck on a dead X server must not keep the process alive
        )
        self._thread.start()
        try:
            problem = started.result(START_TIMEOUT)
        except TimeoutError:
            problem = f"the display did not answer within {START_TIMEOUT:g} s"
        if problem is not None:
            self._stop(join=False)  # a thread stuck on the display is left to die with us
            raise BridgeError(BridgeReason.NO_DISPLAY, problem)

    # The Presenter protocol, called on the event loop.

    def request_started(self, request: BridgeRequest, cancel: Cancel) -> None:
        """Raise the window for `request`; Cancel then calls `cancel` on this (running) loop."""
        loop = asyncio.get_running_loop()

        def cancel_on_loop() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to cancel
                loop.call_soon_threadsafe(cancel)

        heading = request.title
        self._post(lambda view: view.start_request(heading, cancel_on_loop))

    def show_qr(self, url: str) -> None:
        from .window_view import qr_drawing

        drawing = qr_drawing(url)  # here, so that a bad URL fails the caller
        self._post(lambda view: view.show_qr(drawing))

    def status(self, status: Status) -> None:
        text = shown(status.message, status.stage.value, limit=MAX_LINE_SHOWN)
        connected = status.stage in CONNECTED_STAGES
        self._post(lambda view: view.show_status(text, connected))

    def request_ended(self, outcome: str) -> None:
        text = shown(outcome, "Finished.", limit=MAX_LINE_SHOWN)
        self._post(lambda view: view.end_request(text))

    def notice(self, text: str) -> None:
        message = shown(text, "", limit=MAX_LINE_SHOWN)
        self._post(lambda view: view.show_notice(message))

    def close(self) -> None:
        """Close the window and wait for its thread to end; later calls do nothing."""
        self._stop(join=True)

    # Test hooks: they wait for the Tk thread, so call them off the event loop or briefly.

    @property
    def running(self) -> bool:
        """Whether the window's Tk thread is still alive."""
        return self._thread.is_alive()

    def snapshot(self) -> WindowSnapshot:
        """What the window shows now, read on the Tk thread after the updates posted so far."""
        return self._ask(lambda view: view.snapshot())

    def press_cancel(self) -> None:
        """Press the Cancel button on the Tk thread, as a click would."""
        self._ask(lambda view: view.press_cancel())

    # The Tk thread.

    def _stop(self, *, join: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self._commands.put(None)
        if join:
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                _log.warning("the QR code window did not close within %g s", STOP_TIMEOUT)

    def _post(self, command: _Command) -> None:
        if not self._closed:
            self._commands.put(command)

    def _ask(self, question: Callable[[WindowView], _T]) -> _T:
        if self._closed or not self._thread.is_alive():
            raise RuntimeError("the QR code window is closed")
        answer: Future[_T] = Future()

        def ask(view: WindowView) -> None:
            try:
                answer.set_result(question(view))
            except Exception as exc:
                answer.set_exception(exc)

        self._commands.put(ask)
        return answer.result(STOP_TIMEOUT)

    def _run(self, hide_after_ms: int, started: Future[str | None]) -> None:
        try:
            import tkinter

            from .window_view import WindowView

            root = tkinter.Tk(className="fido-hybrid")
        except Exception as exc:  # TclError: no $DISPLAY, or "couldn't connect to display"
            started.set_result(str(exc) or repr(exc))
            return
        view: WindowView | None = None
        try:
            view = WindowView(root, hide_after_ms)
            root.after(POLL_MS, self._drain, view)
            started.set_result(None)
            root.mainloop()
        except Exception as exc:
            if started.done():
                _log.exception("the QR code window failed")
            else:
                started.set_result(f"the window could not be built: {exc}")
        finally:
            with contextlib.suppress(tkinter.TclError):
                root.destroy()
            # Tk's objects must die on this thread: Tcl aborts the process when an
            # interpreter is deleted from another one.
            del root, view
            gc.collect()

    def _drain(self, view: WindowView) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                break
            if command is None:
                view.root.quit()
                return
            try:
                command(view)
            except Exception:  # one bad update must not take the window down
                _log.exception("the QR code window could not show an update")
        view.root.after(POLL_MS, self._drain, view)
