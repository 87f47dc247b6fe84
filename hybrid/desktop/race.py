"""Offering several authenticators in one ceremony: the first the user picks wins.

Each path (the phone, every security key) runs as its own task. A path *claims* the ceremony
when its result arrives, or earlier when the user has picked it (a touched key about to ask for
its PIN); the claim is atomic across threads, so there is never more than one winner, and every
other path is cancelled at once. A path that fails before any claim is dropped and reported;
the ceremony ends with an error only when no path is left.

Blocking python-fido2 calls run on a thread of their own (`in_thread`) that is joined, also on
cancellation, so no thread outlives a ceremony; only a key that ignores CTAPHID CANCEL is left
behind after `CANCEL_GRACE` seconds, so that it cannot hold the ceremony forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, Generic, TypeVar

from hybrid.errors import BluetoothUnavailable, HybridError, SecurityKeyError, SecurityKeyReason

T = TypeVar("T")

log = logging.getLogger(__name__)

#: How long a cancelled key's thread may take to end before the ceremony stops waiting for it.
CANCEL_GRACE: Final = 2.0

OnDrop = Callable[[str, HybridError], Awaitable[None]]


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


async def in_thread(work: Callable[[], T], cancel: threading.Event, name: str) -> T:
    """Run blocking `work` on a new thread; if cancelled, set `cancel` and wait for the thread.

    `work` must return soon after `cancel` is set (python-fido2 sends CTAPHID CANCEL and the
    key answers KEEPALIVE_CANCEL). A key that ignores CANCEL would hold the ceremony (and its
    timeout) forever, so after `CANCEL_GRACE` seconds the thread is left behind
    (a daemon, logged) and the cancellation goes on. A result that arrives later is dropped.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def runner() -> None:
        try:
            result: T | None = work()
            error: BaseException | None = None
        except BaseException as exc:  # handed to the awaiting task, not lost in the thread
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: the thread was left behind
            loop.call_soon_threadsafe(_settle, done, result, error)

    thread = threading.Thread(target=runner, name=name, daemon=True)
    thread.start()
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        cancel.set()
        await _outlast(done, CANCEL_GRACE, name)
        raise
    finally:
        if done.done():
            thread.join()  # it has handed over its outcome: this only reaps it


async def _outlast(done: asyncio.Future[Any], grace: float, name: str) -> None:
    """Wait (through further cancellations) up to `grace` s for a cancelled thread's outcome."""
    deadline = asyncio.get_running_loop().time() + grace
    while not done.done():
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            log.warning("%s did not stop within %g s of being cancelled: left behind", name, grace)
            break
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([done], timeout=remaining)
    # a late outcome (an error too) is dropped: the cancellation is what counts
    done.add_done_callback(lambda late: late.cancelled() or late.exception())


def may_come_back(error: HybridError) -> bool:
    """Whether a dropped key may be offered again (plugged back in): not "tried" yet."""
    return isinstance(error, SecurityKeyError) and error.reason is SecurityKeyReason.REMOVED


def _final(error: HybridError) -> bool:
    return not may_come_back(error)


class Race(Generic[T]):
    """Paths racing for one ceremony; `wait()` returns the winner's result.

    `on_drop(name, error)` reports a path that failed before anyone won. When no path is left
    and at least one really tried, `wait()` raises the most useful error: one from a path that
    was available rather than `BluetoothUnavailable`, the latest first.
    """

    def __init__(self, on_drop: OnDrop, *, more_may_come: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._winner: str | None = None
        self._tasks: dict[str, asyncio.Task[T]] = {}
        self._finished: asyncio.Queue[tuple[str, asyncio.Task[T]]] = asyncio.Queue()
        self._on_drop = on_drop
        self._errors: list[HybridError] = []
        #: Keys are being looked for: an empty race waits for one instead of failing.
        self.more_may_come = more_may_come

    @property
    def decided(self) -> bool:
        return self._winner is not None

    @property
    def winner(self) -> str | None:
        """The path that claimed the ceremony, once one has."""
        return self._winner

    def running(self, name: str) -> bool:
        return name in self._tasks

    def start(self, name: str, path: Coroutine[Any, Any, T]) -> None:
        """Add a path (ignored, and closed, once the race is decided or `name` runs already)."""
        if self.decided or name in self._tasks:
            path.close()
            return
        task = asyncio.create_task(path, name=f"hybrid-path-{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda done: self._finished.put_nowait((name, done)))

    def claim(self, name: str) -> bool:
        """Make `name` the winner unless another path is; cancel the others. Thread-safe."""
        with self._lock:
            if self._winner is None:
                self._winner = name
            won = self._winner == name
        if won:
            if threading.get_ident() == self._loop_thread:
                self._cancel_others()
            else:
                self._loop.call_soon_threadsafe(self._cancel_others)
        return won

    def _cancel_others(self) -> None:
        for name, task in self._tasks.items():
            if name != self._winner:
                task.cancel()

    async def wait(self) -> T:
        """The winner's result, or its error; see the class docstring for the end."""
        while True:
            if not self._tasks and self._ended():
                raise self._final_error()
            name, task = await self._finished.get()
            del self._tasks[name]
            if task.cancelled():
                continue  # it lost the race
            error = task.exception()
            if error is None:
                if self.claim(name):
                    return task.result()
                continue  # answered too late: never two results
            if self._winner == name or not isinstance(error, HybridError):
                raise error  # the user's pick failed, or a bug: not something to skip
            self._errors.append(error)
            await self._on_drop(name, error)

    def _ended(self) -> bool:
        if not self._errors:
            return False  # nothing tried yet: wait for a key to be plugged in
        return not self.more_may_come or any(_final(e) for e in self._errors)

    def _final_error(self) -> HybridError:
        tried = [e for e in self._errors if _final(e)] or self._errors
        available = [e for e in tried if not isinstance(e, BluetoothUnavailable)]
        return (available or tried)[-1]

    async def aclose(self) -> None:
        """Cancel every path still running and wait until each has really ended."""
        for task in self._tasks.values():
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
