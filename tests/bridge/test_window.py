"""The bridge's QR code window on a real X server (Xvfb): what it draws, says and does.

The code is read back from a screenshot with zbar, the texts from the widgets (on the Tk
thread, through `snapshot`), and Cancel is pressed on the Tk thread as a click would be.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import ImageGrab, features

from hybrid.bridge.request import BridgeRequest
from hybrid.bridge.window import WindowPresenter
from hybrid.bridge.window_view import (
    CONNECTED_TEXT,
    QR_TARGET_PX,
    WINDOW_TITLE,
    WindowSnapshot,
    qr_drawing,
)
from hybrid.errors import (
    BluetoothReason,
    BluetoothUnavailable,
    BridgeError,
    BridgeReason,
    ProtocolError,
)
from hybrid.protocol import QRCode
from hybrid.qr.image import NoQrCodeFound, decode_qr_image
from hybrid.qr.render import QUIET_ZONE, make_qr
from hybrid.status import Stage, Status
from tests.bridge.xvfb import XServer, need, running_xvfb, unused_display

#: Bounds for waiting on the window; only reached when something is broken.
PATIENCE = 20.0
HOSTILE_RP_ID = "\x1b[31mbank\u202eevil\u2066.example\x07"
HOSTILE_RP_SHOWN = "?[31mbank?evil?.example?"

Presenters = Callable[..., WindowPresenter]


def _need_tkinter() -> None:
    need(importlib.util.find_spec("_tkinter") is not None, "this Python has no tkinter")


@pytest.fixture(scope="module")
def xserver() -> Iterator[XServer]:
    _need_tkinter()
    with running_xvfb() as server:
        yield server


@pytest.fixture
def display(xserver: XServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DISPLAY", xserver.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return xserver.display


@pytest_asyncio.fixture
async def presenters(display: str) -> AsyncIterator[Presenters]:
    """Makes presenters on the test's X server; closes them before the server goes."""
    made: list[WindowPresenter] = []

    def make(**options: float) -> WindowPresenter:
        made.append(WindowPresenter(**options))
        return made[-1]

    yield make
    for presenter in made:
        presenter.close()


async def snapshot(presenter: WindowPresenter) -> WindowSnapshot:
    return await asyncio.to_thread(presenter.snapshot)


async def wait_for_window(
    presenter: WindowPresenter, condition: Callable[[WindowSnapshot], bool]
) -> WindowSnapshot:
    """The first snapshot meeting `condition`; fails after `PATIENCE` seconds."""
    async with asyncio.timeout(PATIENCE):
        while not condition(shot := await snapshot(presenter)):
            await asyncio.sleep(0.02)
    return shot


async def loop_caught_up() -> None:
    """Returns once every callback scheduled on the loop before this call has run."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await done


def a_url() -> str:
    return QRCode.generate("ga")[0].to_url()


def not_pressed() -> None:
    """The cancel of requests whose test does not press Cancel."""


# The code as drawn, no display needed.


def test_drawing_holds_the_codes_modules_inside_a_quiet_zone() -> None:
    url = a_url()
    modules = make_qr(url).modules
    drawing = qr_drawing(url)
    count = len(modules)
    assert drawing.size == (count + 2 * QUIET_ZONE) * drawing.module
    assert QR_TARGET_PX * 0.8 <= drawing.size <= QR_TARGET_PX
    dark = [[False] * count for _ in range(count)]
    for x0, y0, x1, y1 in drawing.rectangles:
        assert y1 - y0 == drawing.module
        assert x0 % drawing.module == y0 % drawing.module == x1 % drawing.module == 0
        row = y0 // drawing.module - QUIET_ZONE
        for col in range(x0 // drawing.module - QUIET_ZONE, x1 // drawing.module - QUIET_ZONE):
            assert 0 <= row < count and 0 <= col < count  # nothing in the quiet zone
            assert not dark[row][col]
            dark[row][col] = True
    assert dark == [[bool(m) for m in row] for row in modules]


def test_a_bad_url_fails_the_caller() -> None:
    with pytest.raises(ProtocolError):
        qr_drawing("https://example.com/")


# The window on Xvfb.


async def test_screenshot_reads_back_as_the_url_shown(
    presenters: Presenters, display: str, tmp_path: Path
) -> None:
    need(bool(features.check("xcb")), "Pillow was built without XCB: ImageGrab cannot read X")
    need(shutil.which("zbarimg") is not None, "zbarimg is missing (apt-get install zbar-tools)")
    presenter = presenters()
    url = a_url()
    presenter.request_started(BridgeRequest("ga", "example.com"), not_pressed)
    presenter.show_qr(url)
    shot = await wait_for_window(presenter, lambda s: s.mapped and s.qr_shown)
    assert shot.title == WINDOW_TITLE

    # Drawing reaches the screen after the window is mapped (Expose, then an idle redraw).
    screenshot = tmp_path / "screen.png"
    read: str | None = None
    async with asyncio.timeout(PATIENCE):
        while read is None:
            ImageGrab.grab(xdisplay=display).save(screenshot)
            try:
                read = await asyncio.to_thread(decode_qr_image, screenshot)
            except NoQrCodeFound:
                await asyncio.sleep(0.05)
    assert read == url


async def test_window_shows_the_request_its_progress_and_outcome(presenters: Presenters) -> None:
    presenter = presenters()
    assert await snapshot(presenter) == WindowSnapshot(
        title=WINDOW_TITLE,
        heading="",
        qr_shown=False,
        qr_text="",
        status="",
        outcome="",
        cancel_enabled=False,
        mapped=False,
        hide_pending=False,
    )

    request = BridgeRequest("mc", HOSTILE_RP_ID)
    presenter.request_started(request, not_pressed)
    presenter.status(Status(Stage.CHECKING_BLUETOOTH, "Checking Bluetooth on this computer"))
    started = await wait_for_window(presenter, lambda s: s.mapped)
    assert started.heading == request.title
    assert started.heading == f"{HOSTILE_RP_SHOWN} asks to register a passkey with your phone"
    assert started.status == "Checking Bluetooth on this computer"
    assert started.cancel_enabled

    presenter.show_qr(a_url())
    presenter.status(Status(Stage.SHOWING_QR, "Scan\u202e the code\r\nwith your phone"))
    scanning = await snapshot(presenter)
    assert (scanning.qr_shown, scanning.qr_text) == (True, "")
    assert scanning.status == "Scan? the code??with your phone"

    hint = "Your phone has not been seen yet: keep it near this computer"
    presenter.status(Status(Stage.PHONE_NOT_SEEN, hint))
    waiting = await snapshot(presenter)
    assert (waiting.qr_shown, waiting.status) == (True, hint)  # a hint, the code stays

    presenter.status(Status(Stage.PHONE_FOUND, "Phone found nearby"))
    found = await snapshot(presenter)
    assert (found.qr_shown, found.qr_text, found.status) == (
        False,
        CONNECTED_TEXT,
        "Phone found nearby",
    )

    failure = f"Failed: {BluetoothUnavailable(BluetoothReason.POWERED_OFF)}"
    presenter.request_ended(failure)
    ended = await snapshot(presenter)
    assert ended.outcome == failure
    assert "Bluetooth is turned off" in ended.outcome
    assert not ended.cancel_enabled
    assert ended.heading == request.title  # still says which request it was about


async def test_the_next_request_starts_clean(presenters: Presenters) -> None:
    presenter = presenters(hide_after=600)
    presenter.request_started(BridgeRequest("ga", "one.example"), not_pressed)
    presenter.show_qr(a_url())
    presenter.status(Status(Stage.DONE, "The phone answered"))
    presenter.request_ended("Done: the phone answered.")
    ending = await snapshot(presenter)
    assert ending.hide_pending and ending.mapped

    presenter.request_started(BridgeRequest("ga", "two.example"), not_pressed)
    second = await snapshot(presenter)
    assert second.heading == "two.example asks to sign in with your phone"
    assert (second.qr_shown, second.qr_text, second.status, second.outcome) == (
        False,
        "",
        "",
        "",
    )
    assert second.cancel_enabled
    assert second.mapped and not second.hide_pending  # the next request keeps it open


async def test_a_notice_comes_up_on_its_own_and_is_made_printable(presenters: Presenters) -> None:
    presenter = presenters(hide_after=600)
    presenter.notice("bank.example\x1b[2J checked silently whether this key holds your passkey")
    shown_notice = await wait_for_window(presenter, lambda s: s.mapped)
    assert (
        shown_notice.outcome
        == "bank.example?[2J checked silently whether this key holds your passkey"
    )
    assert (shown_notice.qr_shown, shown_notice.cancel_enabled) == (False, False)
    assert shown_notice.hide_pending


async def test_cancel_calls_back_once_on_the_event_loop(presenters: Presenters) -> None:
    presenter = presenters()
    calls: list[int] = []
    presenter.request_started(
        BridgeRequest("ga", "example.com"), lambda: calls.append(threading.get_ident())
    )
    presenter.show_qr(a_url())
    await wait_for_window(presenter, lambda s: s.mapped)

    await asyncio.to_thread(presenter.press_cancel)
    await asyncio.to_thread(presenter.press_cancel)  # the button is off by now
    await loop_caught_up()
    assert calls == [threading.get_ident()]
    pressed = await snapshot(presenter)
    assert not pressed.cancel_enabled
    assert pressed.status == "Cancelling…"

    presenter.request_ended("Cancelled.")
    await asyncio.to_thread(presenter.press_cancel)
    await loop_caught_up()
    assert calls == [threading.get_ident()]


async def test_window_hides_after_the_outcome_and_close_joins(presenters: Presenters) -> None:
    presenter = presenters(hide_after=0.05)
    presenter.request_started(BridgeRequest("ga", "example.com"), not_pressed)
    presenter.show_qr(a_url())
    await wait_for_window(presenter, lambda s: s.mapped)

    presenter.request_ended("Done: the phone answered.")
    hidden = await wait_for_window(presenter, lambda s: not s.mapped)
    assert hidden.outcome == "Done: the phone answered."
    assert not hidden.hide_pending

    presenter.close()
    assert not presenter.running
    presenter.close()
    presenter.status(Status(Stage.DONE, "late"))  # a late report after close is dropped
    with pytest.raises(RuntimeError):
        presenter.snapshot()


# No display.


def test_no_display_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    _need_tkinter()
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(BridgeError) as caught:
        WindowPresenter()
    assert caught.value.reason == BridgeReason.NO_DISPLAY
    assert caught.value.detail is not None and "DISPLAY" in caught.value.detail


def test_display_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    _need_tkinter()
    nowhere = unused_display()
    monkeypatch.setenv("DISPLAY", nowhere)
    with pytest.raises(BridgeError) as caught:
        WindowPresenter()
    assert caught.value.reason == BridgeReason.NO_DISPLAY
    assert caught.value.detail == f'couldn\'t connect to display "{nowhere}"'


def test_python_without_tkinter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tkinter", None)  # what `import tkinter` then raises
    with pytest.raises(BridgeError) as caught:
        WindowPresenter()
    assert caught.value.reason == BridgeReason.NO_DISPLAY
    assert caught.value.detail is not None
    assert caught.value.detail.startswith("tkinter is missing")
