"""`python -m hybrid.bridge` (`hybrid-bridge`): the phone as a USB security key for every program.

Runs until Ctrl-C or SIGTERM, destroying the virtual key on the way out. `--check` says
whether it can run here and what to do if not, with its own exit codes (see
`hybrid.bridge.check`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from hybrid.bridge.check import exit_code, run_checks
from hybrid.bridge.daemon import CEREMONY_TIMEOUT, Bridge
from hybrid.bridge.presenter import Presenter, TerminalPresenter
from hybrid.bridge.uhid import UHID_PATH
from hybrid.cli.common import (
    EXIT_OK,
    add_verbose,
    configure_logging,
    positive_seconds,
    run_main,
)
from hybrid.desktop.client import HybridClient
from hybrid.errors import BridgeError

#: The bridge never builds clientData (programs send their clientDataHash): no origin is used.
_UNUSED_ORIGIN = "https://hybrid-bridge.invalid"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybrid-bridge",
        description="Be a USB security key that answers with your phone (Linux, uhid).",
    )
    parser.add_argument(
        "--qr",
        choices=("window", "terminal"),
        default="window",
        help="show the QR code in a window (default) or draw it in this terminal",
    )
    parser.add_argument("--check", action="store_true", help="say whether the bridge can run")
    parser.add_argument("--tunnel-url", help="use this tunnel server (ws://host:port)")
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=CEREMONY_TIMEOUT,
        help=f"seconds one sign-in may take (default {CEREMONY_TIMEOUT:g})",
    )
    parser.add_argument("--uhid", default=UHID_PATH, help=argparse.SUPPRESS)
    parser.add_argument("--ascii", action="store_true", help="draw the QR code with '#' only")
    add_verbose(parser)
    return parser


def make_presenter(qr: str, ascii_only: bool) -> Presenter:
    if qr == "terminal":
        return TerminalPresenter(ascii_only=ascii_only)
    from hybrid.bridge.window import WindowPresenter

    return WindowPresenter()


async def _check(args: argparse.Namespace) -> int:
    findings = await run_checks(args.qr, args.uhid)
    for finding in findings:
        print(finding.line(), flush=True)
    return exit_code(findings)


async def _serve(args: argparse.Namespace) -> int:
    presenter = make_presenter(args.qr, args.ascii)
    client = HybridClient(
        _UNUSED_ORIGIN,
        args.tunnel_url,
        on_status=presenter.status,
        timeout=args.timeout,
        transports=("hybrid",),
    )
    bridge = Bridge(client, presenter, uhid_path=args.uhid, ceremony_timeout=args.timeout)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    def ready(hidraw: str) -> None:
        where = f" as {hidraw}" if hidraw else ""
        print(f"The phone bridge is plugged in{where}: sign in with a security key.", flush=True)

    try:
        await bridge.run(stop, ready)
    finally:
        presenter.close()
    print("The phone bridge is unplugged.", flush=True)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging(args.verbose)
    if args.check:
        return run_main(_check(args), verbose=args.verbose)
    return run_main(
        _serve(args),
        verbose=args.verbose,
        own=(BridgeError,),
        interrupted="Interrupted: the phone bridge is unplugged.",
    )
