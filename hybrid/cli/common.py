"""What the three command lines share: exit codes, `-v`, logging, error reporting, main loop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import sys
import traceback
from collections.abc import Coroutine
from typing import Any, Final, TextIO

from hybrid.errors import AdvertiserError, BluetoothUnavailable, CeremonyTimeout, HybridError
from hybrid.text import printable, printable_lines

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_BLUETOOTH: Final = 3
EXIT_TIMEOUT: Final = 4
#: Each command's own failure: the phone refused (desktop), the credential store (phone).
EXIT_OWN: Final = 5
EXIT_INTERRUPTED: Final = 130


class UsageError(HybridError):
    """A flag, QR code URL, options file or QR image the command cannot use (exit code 2)."""


def exit_code_for(error: BaseException, *, own: tuple[type[BaseException], ...] = ()) -> int:
    """The documented exit code for an error; `own` are the errors of this command's code 5."""
    from hybrid.qr.image import QrImageError
    from hybrid.webauthn import InvalidOptions

    if isinstance(error, own):
        return EXIT_OWN
    if isinstance(error, UsageError | InvalidOptions | QrImageError):
        return EXIT_USAGE
    if isinstance(error, BluetoothUnavailable | AdvertiserError):
        return EXIT_BLUETOOTH
    if isinstance(error, CeremonyTimeout):
        return EXIT_TIMEOUT
    return EXIT_FAILURE


def positive_seconds(value: str) -> float:
    """argparse type: a finite number of seconds above zero."""
    with contextlib.suppress(ValueError):
        if math.isfinite(seconds := float(value)) and seconds > 0:
            return seconds
    raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, and tracebacks with errors"
    )


class PrintableFormatter(logging.Formatter):
    """Log lines for a terminal: what the other side sent (in a message or an exception's
    text) cannot carry an ESC sequence or a bidi override onto the screen."""

    def format(self, record: logging.LogRecord) -> str:
        return printable_lines(super().format(record))


def configure_logging(verbose: bool) -> None:
    """Warnings only, or with -v this project's debug log (dependencies stay at INFO: their
    debug logs would dump frame bytes)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    if verbose:
        logging.getLogger("hybrid").setLevel(logging.DEBUG)


def report(error: BaseException, verbose: bool, err: TextIO | None = None) -> None:
    """`error: …` on stderr: the project's message, or a request to rerun with -v.

    Both pass through `printable`: a chained exception may quote the other side's words
    (a WebSocket close reason, an HTTP header).
    """
    stream = err or sys.stderr
    if verbose:
        stream.write(printable_lines("".join(traceback.format_exception(error))))
    if isinstance(error, HybridError):
        message = printable(str(error))
    else:
        message = f"unexpected {type(error).__name__}: run again with -v and report the traceback."
    print(f"error: {message}", file=stream, flush=True)


def run_main(
    ceremony: Coroutine[Any, Any, int],
    *,
    verbose: bool,
    own: tuple[type[BaseException], ...] = (),
    interrupted: str = "Interrupted.",
) -> int:
    """Run a command's coroutine; errors become a message on stderr and an exit code."""
    try:
        return asyncio.run(ceremony)
    except KeyboardInterrupt:
        print(f"\n{interrupted}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except Exception as error:
        report(error, verbose)
        return exit_code_for(error, own=own)
