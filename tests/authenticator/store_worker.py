"""A separate process that uses a shared credential store (driven by test_store_sharing.py).

    python store_worker.py STORE add N         add a passkey for siteN.example
    python store_worker.py STORE sign ROUNDS   sign in ROUNDS times; print the counters
    python store_worker.py STORE crash         die between writing the temporary file and
                                               renaming it over the store

Each worker opens its store first, prints "ready" and waits for a line on stdin, so the
parent can make every worker hold a copy read before any of them changes the file.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.ctap2.base import AssertionResponse

from hybrid.authenticator import CredentialStore, SoftwareAuthenticator, approve_all
from hybrid.ctap import decode_cbor_map

SIGN_IN_RP = "example.com"
CRASH_EXIT = 9


def add(store: CredentialStore, number: int) -> None:
    store.add(
        rp_id=f"site{number}.example",
        user_id=b"user",
        user_name=f"user {number}",
        user_display_name=None,
        credential_id=number.to_bytes(16, "big"),
        private_key=ec.generate_private_key(ec.SECP256R1()),
    )


async def sign_in(store: CredentialStore, rounds: int) -> list[int]:
    """Real getAssertion commands, as the phone answers them; returns the signed counters."""
    authenticator = SoftwareAuthenticator(store=store, approve=approve_all)
    request = b"\x02" + cbor.encode({1: SIGN_IN_RP, 2: b"\x00" * 32})
    counters = []
    for _ in range(rounds):
        reply = await authenticator.handle_ctap(request)
        if reply[0] != 0:
            raise SystemExit(f"getAssertion failed with status 0x{reply[0]:02x}")
        counters.append(AssertionResponse.from_dict(decode_cbor_map(reply[1:])).auth_data.counter)
    return counters


def _die(src: object, dst: object, **directories: object) -> NoReturn:
    os._exit(CRASH_EXIT)


def main(path: str, action: str, argument: str = "0") -> None:
    store = CredentialStore(path)
    print("ready", flush=True)
    sys.stdin.readline()
    if action == "add":
        add(store, int(argument))
    elif action == "sign":
        print(" ".join(str(c) for c in asyncio.run(sign_in(store, int(argument)))), flush=True)
    elif action == "crash":
        os.replace = _die  # the power fails right after the temporary file is written
        add(store, 99)
    else:
        raise SystemExit(f"unknown action {action!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
