"""The race between authenticators: one winner, drops reported, threads always joined."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hybrid.ctap import CtapStatus
from hybrid.desktop.race import Race, in_thread
from hybrid.errors import (
    BluetoothReason,
    BluetoothUnavailable,
    HybridError,
    NoCredentials,
    SecurityKeyError,
    SecurityKeyReason,
)


class Drops:
    def __init__(self) -> None:
        self.seen: list[tuple[str, HybridError]] = []

    async def __call__(self, name: str, error: HybridError) -> None:
        self.seen.append((name, error))


async def answer(value: str, after: float = 0.0) -> str:
    await asyncio.sleep(after)
    return value


async def fail(error: BaseException, after: float = 0.0) -> str:
    await asyncio.sleep(after)
    raise error


async def test_two_answers_at_once_give_one_result() -> None:
    race: Race[str] = Race(Drops())
    release = threading.Event()

    def after_release(value: str) -> str:
        release.wait(5)
        return value

    race.start("a", in_thread(lambda: after_release("a"), threading.Event(), "t-a"))
    race.start("b", in_thread(lambda: after_release("b"), threading.Event(), "t-b"))
    await asyncio.sleep(0.05)
    release.set()
    winner = await race.wait()
    await race.aclose()
    assert winner == race.winner and winner in ("a", "b")
    assert not race.claim("a" if winner == "b" else "b")  # the loser can never claim


async def test_a_claim_cancels_the_others_at_once() -> None:
    race: Race[str] = Race(Drops())
    cancelled = threading.Event()

    def blinking() -> str:
        cancelled.wait(5)
        return "late"

    race.start("key", in_thread(blinking, cancelled, "t-key"))
    race.start("phone", answer("phone", after=0.05))
    assert await race.wait() == "phone"
    await race.aclose()
    assert cancelled.is_set()
    assert not any(t.name == "t-key" for t in threading.enumerate())


async def test_dropped_paths_are_reported_and_the_useful_error_ends_it() -> None:
    drops = Drops()
    race: Race[str] = Race(drops)
    no_bluetooth = BluetoothUnavailable(BluetoothReason.POWERED_OFF)
    no_passkey = NoCredentials(CtapStatus.NO_CREDENTIALS, rp_id="example.com")
    race.start("key", fail(no_passkey, after=0.05))
    race.start("phone", fail(no_bluetooth))
    with pytest.raises(NoCredentials) as caught:
        await race.wait()
    assert caught.value is no_passkey  # a path that was there beats "Bluetooth is off"
    assert drops.seen == [("phone", no_bluetooth), ("key", no_passkey)]


async def test_a_removed_key_keeps_the_ceremony_waiting_for_it() -> None:
    race: Race[str] = Race(Drops(), more_may_come=True)
    removed = SecurityKeyError("out", reason=SecurityKeyReason.REMOVED)
    race.start("key", fail(removed))
    waiting = asyncio.create_task(race.wait())
    await asyncio.sleep(0.1)
    assert not waiting.done()
    race.start("key", answer("back"))
    assert await waiting == "back"


async def test_a_bug_in_a_path_is_not_swallowed() -> None:
    race: Race[str] = Race(Drops())
    race.start("key", fail(KeyError("bug")))
    race.start("phone", answer("phone", after=5))
    with pytest.raises(KeyError):
        await race.wait()
    await race.aclose()


async def test_in_thread_drops_a_result_that_comes_after_the_cancel() -> None:
    cancel = threading.Event()
    started = threading.Event()

    def work() -> str:
        started.set()
        cancel.wait(5)
        return "too late"

    task = asyncio.create_task(in_thread(work, cancel, "t-work"))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancel.is_set() and not any(t.name == "t-work" for t in threading.enumerate())
