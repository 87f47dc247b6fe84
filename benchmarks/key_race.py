"""Benchmark: a USB security key inside `HybridClient`'s race, against python-fido2 alone.

Measures (1) one key sign-in through `HybridClient` (discovery, race, worker thread, JSON)
against opening the same software key and calling `Fido2Client.get_assertion` directly, and
(2) how long a cancelled ceremony takes to return once the key blinks: CTAPHID CANCEL sent,
KEEPALIVE_CANCEL back, the key's thread joined (target < 250 ms; the key itself answers a
CANCEL within one 20 ms touch poll, the host reads every 100 ms at most).

    python benchmarks/key_race.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from typing import Any

from fido2.client import AssertionSelection, DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hybrid.authenticator import SoftwareSecurityKey
from hybrid.desktop import HybridClient
from hybrid.status import Stage, Status

ORIGIN = "https://example.com"
USER = PublicKeyCredentialUserEntity(id=b"bench", name="bench", display_name="Bench")
DISCOURAGED = UserVerificationRequirement.DISCOURAGED


def milliseconds(seconds: list[float]) -> str:
    values = [s * 1000 for s in seconds]
    return f"median {statistics.median(values):6.1f} ms, max {max(values):6.1f} ms"


def no_qr(url: str) -> None:
    raise AssertionError("keys only: no QR code")


def fido2_alone(key: SoftwareSecurityKey, options: Any) -> AssertionSelection:
    """What an application does without us: open the key, Fido2Client, one sign-in."""
    device = key.open_device()
    try:
        return Fido2Client(device, DefaultClientDataCollector(ORIGIN)).get_assertion(options)
    finally:
        device.close()


async def sign_ins(rounds: int) -> tuple[list[float], list[float]]:
    server = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    ours: list[float] = []
    direct: list[float] = []
    with SoftwareSecurityKey.with_store() as key:  # touched at once
        client = HybridClient(ORIGIN, transports=("usb",), security_keys=key.plugged_devices)
        options, state = server.register_begin(
            USER, resident_key_requirement=ResidentKeyRequirement.REQUIRED
        )
        credential = await client.make_credential(dict(options["publicKey"]), no_qr)
        data = server.register_complete(state, credential).credential_data
        assert data is not None
        for _ in range(rounds):
            request, state = server.authenticate_begin([data], user_verification=DISCOURAGED)
            started = time.perf_counter()
            assertion = await client.get_assertion(dict(request["publicKey"]), no_qr)
            ours.append(time.perf_counter() - started)
            server.authenticate_complete(state, [data], assertion)

            request, state = server.authenticate_begin([data], user_verification=DISCOURAGED)
            started = time.perf_counter()
            selection = await asyncio.to_thread(fido2_alone, key, request.public_key)
            direct.append(time.perf_counter() - started)
            server.authenticate_complete(state, [data], selection.get_response(0))
    return ours, direct


async def cancellations(rounds: int) -> list[float]:
    server = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    latencies: list[float] = []
    touch = threading.Event()  # never touched
    with SoftwareSecurityKey.with_store(touch=touch) as key:
        for _ in range(rounds):
            blinking = asyncio.Event()

            def on_status(status: Status, blinking: asyncio.Event = blinking) -> None:
                if status.stage is Stage.TOUCH_KEY:
                    blinking.set()

            client = HybridClient(
                ORIGIN,
                on_status=on_status,
                transports=("usb",),
                security_keys=key.plugged_devices,
            )
            options, _ = server.register_begin(USER, user_verification=DISCOURAGED)
            task = asyncio.create_task(client.make_credential(dict(options["publicKey"]), no_qr))
            await blinking.wait()
            started = time.perf_counter()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                latencies.append(time.perf_counter() - started)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    ours, direct = asyncio.run(sign_ins(args.rounds))
    print(f"key sign-in via HybridClient: {milliseconds(ours)}")
    print(f"Fido2Client alone, same key:  {milliseconds(direct)}")
    ratio = statistics.median(ours) / statistics.median(direct)
    print(f"ratio: {ratio:.2f} (discovery, race, thread and JSON on top of python-fido2)")
    latencies = asyncio.run(cancellations(max(5, args.rounds // 3)))
    print(f"cancel to return, thread joined: {milliseconds(latencies)} (target < 250 ms)")


if __name__ == "__main__":
    main()
