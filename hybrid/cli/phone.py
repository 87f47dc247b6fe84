"""`python -m hybrid.authenticator`: answer a `FIDO:/` QR code as the phone, from a terminal.

A thin shell over `answer_qr`: it turns flags into a store, an approval prompt and an
advertiser, prints progress to stderr and one result line to stdout, and maps every
`HybridError` to an exit code a script can act on. Nothing here speaks the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path
from typing import Final, TextIO

from hybrid.authenticator.ctap import SoftwareAuthenticator
from hybrid.authenticator.phone import DEFAULT_TIMEOUT, PhoneSessionResult, answer_qr
from hybrid.authenticator.store import CredentialStore
from hybrid.ble.advertiser import Advertiser
from hybrid.cli.common import (
    EXIT_OK,
    EXIT_OWN,
    EXIT_USAGE,
    UsageError,
    add_verbose,
    configure_logging,
    exit_code_for,
    positive_seconds,
    report,
    run_main,
)
from hybrid.cli.prompt import TerminalApprover, read_line
from hybrid.ctap import status_name
from hybrid.errors import (
    AdvertiserError,
    AdvertiserReason,
    PeerError,
    PeerReason,
    ProtocolError,
    StoreError,
)
from hybrid.protocol import QRCode, normalize_base_url
from hybrid.qr.image import decode_qr_image
from hybrid.text import shown

log = logging.getLogger(__name__)

#: The credential store cannot be used.
EXIT_STORE: Final = EXIT_OWN

MEMORY_STORE: Final = ":memory:"
#: The URL argument that reads the QR code text from stdin, out of `ps` and shell history.
FROM_STDIN: Final = "-"

EPILOG: Final = """\
the QR code text holds this sign-in's secret: pass "-" and paste it (or pipe it) on stdin,
so that it stays out of `ps`, /proc/PID/cmdline and the shell history. Piped, the first
line is the FIDO:/ text and the next line answers the y/N prompt:
  printf '%s\\ny\\n' "$QR" | python -m hybrid.authenticator - --store :memory:

approval is presence only: the y/N prompt and --yes show that someone at this terminal
agreed; neither verifies who it is (no PIN, no biometric), so this authenticator never
offers or claims user verification: a request that demands it (uv) is answered with
UNSUPPORTED_OPTION before any prompt, and every answer has the UV flag clear.

output:
  progress and errors go to stderr; on success stdout gets one line:
    answered COMMAND for RP_ID: STATUS
  e.g. "answered makeCredential for example.com: OK" or
  "answered getAssertion for example.com: NO_CREDENTIALS" (CTAP status name)

exit codes:
  0    the request was answered (also when the answer is a CTAP error status)
  1    failure: tunnel, protocol, or the computer broke off
  2    usage error: bad flags, bad QR code URL, unreadable QR image
  3    Bluetooth or the advertiser is unavailable
  4    timeout: the computer did not finish in time
  5    credential store error
  130  interrupted (Ctrl-C): advertising stopped and the tunnel closed
"""


def default_store_path() -> Path:
    """`$XDG_DATA_HOME/fido-hybrid/credentials.json`, else under `~/.local/share`."""
    data_home = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "fido-hybrid" / "credentials.json"


def _advertiser_spec(value: str) -> str:
    kind, sep, rest = value.partition(":")
    if (kind == "bumble" and rest) or (kind == "bluez" and (rest or not sep)):
        return value
    raise argparse.ArgumentTypeError(
        f"{value!r} is not an advertiser: use bluez, bluez:ADAPTER (e.g. bluez:hci1) or "
        "bumble:TRANSPORT (e.g. bumble:usb:0, bumble:serial:/dev/ttyUSB0)"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hybrid.authenticator",
        description="Act as the phone in a FIDO hybrid (caBLE v2) sign-in: answer the\n"
        "FIDO:/ QR code a computer shows, with passkeys kept in a local file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "url",
        nargs="?",
        metavar="FIDO:/...|-",
        help=f"the QR code's text, or '{FROM_STDIN}' to read it from stdin (keeps its secret "
        "out of ps and shell history)",
    )
    source.add_argument(
        "--qr-image", metavar="FILE", help="read the QR code from a picture instead (needs zbarimg)"
    )
    p.add_argument(
        "--tunnel-url",
        metavar="URL",
        help="tunnel server to use, ws://host:port or wss://host "
        "(default: Google's, as phones use)",
    )
    p.add_argument(
        "--store",
        metavar="FILE",
        help=f"credential store; '{MEMORY_STORE}' keeps nothing "
        "(default: $XDG_DATA_HOME/fido-hybrid/credentials.json)",
    )
    p.add_argument(
        "--advertiser",
        type=_advertiser_spec,
        metavar="bumble:SPEC|bluez[:ADAPTER]",
        help="how to send the Bluetooth advert (default: bluez on Linux)",
    )
    p.add_argument(
        "--yes",
        action="store_true",
        help="approve every request without asking (presence only, like the y/N prompt: "
        "never user verification)",
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help="give up after S seconds (default %(default)g)",
    )
    p.add_argument(
        "--link",
        action="store_true",
        help="send linking info (the computer may offer to remember this phone)",
    )
    p.add_argument(
        "--name",
        default="fido-hybrid",
        help="this authenticator's name in linking info (default %(default)s)",
    )
    add_verbose(p)
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed flags, or the exit code argparse chose (0 for --help, 2 for bad flags)."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def open_store(value: str | None) -> CredentialStore:
    """Check the store's folder before the ceremony: a write failure mid-way cannot be undone."""
    if value == MEMORY_STORE:
        return CredentialStore(None)
    path = Path(value) if value is not None else default_store_path()
    folder = path.parent
    if value is None:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the folder {folder} for the credential store "
                f"({exc.strerror or exc}): pass --store FILE in a writable folder, or "
                f"--store {MEMORY_STORE}."
            ) from exc
    if not folder.is_dir():
        problem = "does not exist: create it"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = "is not writable: fix its permissions"
    else:
        return CredentialStore(path)
    raise StoreError(
        f"The folder {folder} of the credential store {problem}, or pass another --store FILE "
        f"(or --store {MEMORY_STORE})."
    )


@contextlib.asynccontextmanager
async def open_advertiser(spec: str | None) -> AsyncIterator[Advertiser]:
    """The advertiser a `--advertiser` value names; released (advert stopped) on exit."""
    if spec is None:
        if not sys.platform.startswith("linux"):
            raise AdvertiserError(
                "Only Linux (BlueZ) can advertise without extra hardware: pass --advertiser "
                "bumble:usb:0 with a Bluetooth USB dongle the system does not use.",
                AdvertiserReason.NO_ADAPTER,
            )
        spec = "bluez"
    kind, _, rest = spec.partition(":")
    if kind == "bumble":
        from hybrid.ble.bumble_advertiser import BumbleAdvertiser

        bumble = await BumbleAdvertiser.open(rest)
        try:
            yield bumble
        finally:
            await _release(bumble.close())
        return
    try:
        from hybrid.ble.bluez_advertiser import BluezAdvertiser
    except ImportError as exc:
        raise AdvertiserError(
            f"BlueZ advertising needs the dbus-fast package ({exc.name}): install it with "
            "'pip install dbus-fast', or use --advertiser bumble:usb:0 with a USB dongle.",
            AdvertiserReason.NOT_INSTALLED,
        ) from exc
    try:
        bluez = BluezAdvertiser(rest or "hci0")
    except AdvertiserError as exc:
        raise UsageError(str(exc)) from exc
    try:
        yield bluez
    finally:
        await _release(bluez.stop())


async def _release(closing: Awaitable[None]) -> None:
    """Await a close/stop call; its failure is logged so it never hides the real outcome."""
    try:
        await closing
    except Exception as exc:
        log.warning("could not release the advertiser: %s", exc)


async def url_from_stdin(stdin: TextIO, err: TextIO) -> str:
    """The first line of `stdin`: the QR code text, pasted or piped.

    Read without buffering ahead, so a piped answer to the y/N prompt on the next line is
    still there for the prompt.
    """
    if stdin.isatty():
        print("Paste the FIDO:/ text of the QR code, then press Enter: ", end="", file=err)
        err.flush()
    url = (await read_line(stdin)).strip()
    if not url:
        raise UsageError(
            "No QR code text on stdin: paste the FIDO:/ text (or pipe it in) as its first line."
        )
    return url


async def _checked_url(args: argparse.Namespace) -> str:
    """The QR code text (from --qr-image or stdin if so asked), checked with --tunnel-url."""
    url: str = args.url
    if args.qr_image is not None:
        url = await asyncio.to_thread(decode_qr_image, args.qr_image)
    elif url == FROM_STDIN:
        url = await url_from_stdin(sys.stdin, sys.stderr)
    try:
        QRCode.from_url(url)
    except ProtocolError as exc:
        raise UsageError(
            f"The QR code text is not usable ({exc.detail}). Copy the whole FIDO:/ text again, or "
            "pass --qr-image with a picture of the code."
        ) from exc
    try:
        if args.tunnel_url is not None:
            normalize_base_url(args.tunnel_url)
    except ProtocolError as exc:
        raise UsageError(f"Bad --tunnel-url: {exc.detail}.") from exc
    return url


def result_line(result: PhoneSessionResult, rp_id: str | None) -> str:
    """`answered COMMAND[ for RP_ID]: STATUS`, the one line printed to stdout."""
    assert result.command is not None and result.status is not None
    status = "OK" if result.status == 0 else status_name(result.status)
    site = f" for {shown(rp_id, '?')}" if rp_id else ""
    return f"answered {result.command}{site}: {status}"


async def _session(args: argparse.Namespace, advertiser: Advertiser | None) -> int:
    url = await _checked_url(args)
    approver = TerminalApprover(args.yes)
    authenticator = SoftwareAuthenticator(store=open_store(args.store), approve=approver)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    async with contextlib.AsyncExitStack() as stack:
        if advertiser is None:
            advertiser = await stack.enter_async_context(open_advertiser(args.advertiser))
        result = await answer_qr(
            url,
            authenticator,
            advertiser,
            args.tunnel_url,
            timeout=args.timeout,
            link=args.link,
            name=args.name,
            on_status=progress,
        )
    if result.command is None:
        raise PeerError(
            "The computer ended the session without sending a request: start the sign-in "
            "again on the computer and scan the new QR code.",
            reason=PeerReason.ENDED_WITHOUT_REQUEST,
        )
    if result.linked:
        progress("Sent linking info")
    print(result_line(result, approver.rp_id), flush=True)
    return EXIT_OK


async def run_args(args: argparse.Namespace, advertiser: Advertiser | None = None) -> int:
    """Run one session; errors become messages on stderr and exit codes."""
    try:
        return await _session(args, advertiser)
    except Exception as exc:
        report(exc, args.verbose)
        return exit_code_for(exc, own=(StoreError,))


async def run(argv: Sequence[str] | None = None, *, advertiser: Advertiser | None = None) -> int:
    """Parse `argv` and answer one QR code; `advertiser` (if given) replaces --advertiser.

    The caller keeps ownership of an `advertiser` it passes: it is stopped, not closed.
    """
    args = parse_args(argv)
    if isinstance(args, int):
        return args
    return await run_args(args, advertiser)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m hybrid.authenticator`; returns the exit code."""
    args = parse_args(argv)
    if isinstance(args, int):
        return args
    configure_logging(args.verbose)
    return run_main(
        run_args(args),
        verbose=args.verbose,
        own=(StoreError,),
        interrupted="interrupted: stopped advertising and closed the tunnel",
    )
