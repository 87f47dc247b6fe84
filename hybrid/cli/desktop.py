"""`python -m hybrid.qr`: sign in (or register) from a terminal with a phone or a security key."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final, TextIO

from fido2.utils import websafe_encode

from hybrid.cli.common import (
    EXIT_OK,
    EXIT_OWN,
    EXIT_USAGE,
    add_verbose,
    configure_logging,
    positive_seconds,
    run_main,
)
from hybrid.cli.pin import terminal_pin
from hybrid.cli.prf import add_prf_option, print_prf_results, with_prf_inputs
from hybrid.desktop import TRANSPORTS, HybridClient
from hybrid.errors import CtapStatusError
from hybrid.qr.render import render_terminal, write_png, write_svg
from hybrid.status import Status

#: The phone or key refused: declined, no passkey for the site, already registered.
EXIT_REFUSED: Final = EXIT_OWN

EPILOG: Final = """\
examples:
  python -m hybrid.qr demo                      everything on this machine, no hardware
  python -m hybrid.qr --rp-id example.com       sign in (generated challenge)
  python -m hybrid.qr --register --user alice   register a passkey
  python -m hybrid.qr --transport usb           a USB security key only (no QR code)
  python -m hybrid.qr --options opts.json --origin https://example.com --json
  python -m hybrid.qr --prf "vault key"         sign in and print the passkey's PRF output

exit codes:
  0    the phone or security key answered; the credential JSON is on stdout
  1    failure (tunnel server, protocol, the phone hung up, a key left out)
  2    usage error (bad flags, unreadable or invalid options)
  3    Bluetooth unavailable on this computer (off, absent, denied, no BlueZ)
       and no security key to use instead
  4    timed out waiting for the phone or security key
  5    refused: declined, no passkey for the site, already registered
  130  interrupted (Ctrl-C)

The phone (QR code) and every USB security key are offered at once; the first you use
answers. A key's PIN is asked on the terminal when the key needs it. The QR code and
progress go to stderr, the credential JSON to stdout.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hybrid.qr",
        description=(
            "Sign in on this computer with the passkey on your phone (FIDO hybrid) or on a USB "
            "security key."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rp-id", default="example.com", help="relying party ID (a domain)")
    parser.add_argument("--origin", help="origin of the request (default: https://RP_ID)")
    parser.add_argument(
        "--options",
        metavar="FILE",
        help="WebAuthn options JSON from your server ('-' for stdin); default: generated",
    )
    parser.add_argument("--register", action="store_true", help="create a passkey")
    parser.add_argument("--user", default="user", help="user name when registering")
    parser.add_argument("--png", metavar="FILE", help="also write the QR code as PNG")
    parser.add_argument("--svg", metavar="FILE", help="also write the QR code as SVG")
    parser.add_argument("--json", action="store_true", help="print compact JSON only")
    parser.add_argument(
        "--timeout", type=positive_seconds, default=300.0, help="seconds (default 300)"
    )
    parser.add_argument("--tunnel-url", help="use this tunnel server (ws://host:port)")
    parser.add_argument(
        "--invert", action="store_true", help="swap dark and light in the terminal QR code"
    )
    parser.add_argument("--ascii", action="store_true", help="draw the QR code with '#' only")
    add_prf_option(parser)
    add_transport_options(parser)
    add_verbose(parser)
    return parser


def add_transport_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        help="offer only the phone (hybrid) or only USB security keys (usb); default: both",
    )


def key_options(args: argparse.Namespace, err: TextIO) -> dict[str, Any]:
    """`HybridClient` arguments for `--transport` and the PIN prompt (on the terminal)."""
    transports = (args.transport,) if args.transport else TRANSPORTS
    return {"transports": transports, "on_pin": terminal_pin(err)}


def generated_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options a relying party would send, for trying the flow without one."""
    challenge = websafe_encode(secrets.token_bytes(32))
    if not args.register:
        return {"challenge": challenge, "rpId": args.rp_id, "userVerification": "preferred"}
    return {
        "challenge": challenge,
        "rp": {"id": args.rp_id, "name": args.rp_id},
        "user": {
            "id": websafe_encode(secrets.token_bytes(16)),
            "name": args.user,
            "displayName": args.user,
        },
        "pubKeyCredParams": [
            {"type": "public-key", "alg": -7},
            {"type": "public-key", "alg": -257},
        ],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "preferred"},
        "attestation": "none",
    }


def load_options(path: str, stdin: TextIO) -> Any:
    """Read an options JSON file; `PublicKeyCredential*OptionsJSON` or `{"publicKey": …}`."""
    text = stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    data = json.loads(text)
    if isinstance(data, dict) and isinstance(data.get("publicKey"), dict):
        return data["publicKey"]
    return data


class TerminalUI:
    """Draws the QR code and progress lines on stderr."""

    def __init__(self, args: argparse.Namespace, err: TextIO) -> None:
        self._args = args
        self._err = err
        self._colour = err.isatty() and "NO_COLOR" not in os.environ and not args.invert

    def status(self, status: Status) -> None:
        print(f"• {status.message}", file=self._err, flush=True)

    def show_qr(self, url: str) -> None:
        if self._args.png:
            write_png(url, self._args.png)
        if self._args.svg:
            write_svg(url, self._args.svg)
        art = render_terminal(url, invert=self._args.invert, ascii_only=self._args.ascii)
        if self._colour:  # black on white whatever the terminal's own colours are
            art = "".join(f"\x1b[30;47m{line}\x1b[0m\n" for line in art.splitlines())
        print(art, file=self._err, end="", flush=True)
        print("Scan this code with your phone's camera.", file=self._err, flush=True)


async def run(
    args: argparse.Namespace,
    options: Any,
    out: TextIO,
    err: TextIO,
    *,
    after_qr: Callable[[str], None] | None = None,
    **client_kwargs: Any,
) -> int:
    """Run one ceremony and print its result.

    `after_qr(url)` runs once the code is shown; `client_kwargs` (such as `scanner_backend`)
    go to `HybridClient`. Both are for embedding and tests.
    """
    ui = TerminalUI(args, err)
    client = HybridClient(
        origin=args.origin or f"https://{args.rp_id}",
        tunnel_url=args.tunnel_url,
        on_status=None if args.json else ui.status,
        timeout=args.timeout,
        **{**key_options(args, err), **client_kwargs},
    )

    def show_qr(url: str) -> None:
        ui.show_qr(url)
        if after_qr is not None:
            after_qr(url)

    ceremony = client.make_credential if args.register else client.get_assertion
    credential = await ceremony(with_prf_inputs(options, args.prf), show_qr)
    print_prf_results(credential, args.prf, err)
    if args.json:
        print(json.dumps(credential, separators=(",", ":")), file=out)
    else:
        print(json.dumps(credential, indent=2), file=out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        from hybrid.cli.demo import main as demo_main

        return demo_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = load_options(args.options, sys.stdin) if args.options else generated_options(args)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the options: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(args.verbose)
    return run_main(
        run(args, options, sys.stdout, sys.stderr), verbose=args.verbose, own=(CtapStatusError,)
    )
