"""Embed the desktop role in an application: sign in with the passkey on a phone.

    python examples/desktop_client.py options.json --origin https://example.com

`options.json` is the PublicKeyCredentialRequestOptionsJSON your server issued (use
`--register` for creation options). The QR code is drawn in the terminal; progress and the
Bluetooth diagnosis come through `on_status` and `check_bluetooth`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from hybrid import BluetoothUnavailable, HybridClient, HybridError, Status
from hybrid.qr import render_terminal


def show_qr(url: str) -> None:
    print(render_terminal(url), file=sys.stderr)
    print("Scan this code with your phone.", file=sys.stderr)


def on_status(status: Status) -> None:
    print(f"[{status.stage.value}] {status.message}", file=sys.stderr)


async def sign_in(options: dict[str, object], origin: str, register: bool) -> int:
    client = HybridClient(origin=origin, on_status=on_status, timeout=120)
    try:
        await client.check_bluetooth()  # instant diagnosis before drawing anything
    except BluetoothUnavailable as exc:
        print(f"{exc} [{exc.reason.value}]", file=sys.stderr)
        return 3
    try:
        if register:
            credential = await client.make_credential(options, show_qr)
        else:
            credential = await client.get_assertion(options, show_qr)
    except HybridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(credential, indent=2))  # send this to your server to verify
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("options", type=Path)
    parser.add_argument("--origin", default="https://example.com")
    parser.add_argument("--register", action="store_true")
    args = parser.parse_args()
    options = json.loads(args.options.read_text())
    return asyncio.run(sign_in(options, args.origin, args.register))


if __name__ == "__main__":
    raise SystemExit(main())
