"""`hybrid-bridge --check`: can the bridge run here, and if not, what to do — in about a second.

Each check gives a `Finding` carrying its data (the reason enum, the exit code) and one line
of advice; nothing is changed on the system.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, Final

from hybrid.errors import BluetoothReason, BluetoothUnavailable, BridgeError, BridgeReason

from .uhid import UHID_PATH, open_uhid

EXIT_READY: Final = 0
EXIT_BLUETOOTH: Final = 3
EXIT_UHID: Final = 5
EXIT_DISPLAY: Final = 6
#: Bluetooth gets this long: BlueZ answers in milliseconds when it is there at all.
BLUETOOTH_CHECK_SECONDS: Final = 0.8


@dataclass(frozen=True)
class Finding:
    """One check's result: `reason` is None when it passed."""

    what: str
    ok: bool
    message: str
    exit_code: int = EXIT_READY
    reason: BridgeReason | BluetoothReason | None = None

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.what}: {self.message}"


def check_uhid(path: str = UHID_PATH) -> Finding:
    """Whether /dev/uhid can be opened (opening it creates nothing)."""
    try:
        os.close(open_uhid(path))
    except BridgeError as error:
        return Finding("uhid", False, str(error), EXIT_UHID, error.reason)
    return Finding("uhid", True, f"{path} can be opened: the virtual key can be made")


def check_display(qr: str, environ: dict[str, str] | None = None) -> Finding:
    """Whether the QR code window can open (only asked with `--qr window`)."""
    if qr != "window":
        return Finding("display", True, "the QR code is drawn in this terminal (--qr terminal)")
    env = os.environ if environ is None else environ
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        error = BridgeError(BridgeReason.NO_DISPLAY, "DISPLAY and WAYLAND_DISPLAY are unset")
        return Finding("display", False, str(error), EXIT_DISPLAY, error.reason)
    try:
        import tkinter  # noqa: F401
    except ImportError as exc:
        error = BridgeError(BridgeReason.NO_DISPLAY, f"tkinter is missing: {exc}")
        return Finding("display", False, str(error), EXIT_DISPLAY, error.reason)
    return Finding("display", True, "a display is set: the QR code opens in a window")


async def check_bluetooth(
    scanner_backend: Any = None, scanner_kwargs: dict[str, Any] | None = None
) -> Finding:
    """Whether a Bluetooth LE scan can start now (the phone's advert is heard that way)."""
    from hybrid.ble.scanner import check_bluetooth as can_scan

    try:
        async with asyncio.timeout(BLUETOOTH_CHECK_SECONDS):
            await can_scan(scanner_backend, scanner_kwargs, timeout=BLUETOOTH_CHECK_SECONDS)
    except BluetoothUnavailable as error:
        return Finding("bluetooth", False, str(error), EXIT_BLUETOOTH, error.reason)
    except TimeoutError:
        slow = BluetoothUnavailable(BluetoothReason.TIMEOUT)
        return Finding("bluetooth", False, str(slow), EXIT_BLUETOOTH, slow.reason)
    return Finding("bluetooth", True, "a Bluetooth LE scan can start")


async def run_checks(qr: str, uhid_path: str = UHID_PATH, **scanner: Any) -> list[Finding]:
    """Every check, uhid first (without it nothing else matters)."""
    return [check_uhid(uhid_path), check_display(qr), await check_bluetooth(**scanner)]


def exit_code(findings: list[Finding]) -> int:
    """The first failing check's code, 0 when all passed."""
    return next((f.exit_code for f in findings if not f.ok), EXIT_READY)
