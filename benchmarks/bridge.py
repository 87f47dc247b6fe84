"""Benchmark: a phone sign-in through the bridge (as a USB key) vs the library directly.

Both paths run the same phone (`SoftwareAuthenticator`), the same in-process tunnel server and
the same in-memory "air" for the advert (see ceremony.py), in one process and one run, rounds
alternating so that load from elsewhere hits both:

- library: `HybridClient.get_assertion` (WebAuthn JSON in, JSON out);
- bridge:  python-fido2's `Fido2Client` → `CtapHidDevice` → the bridge's CTAPHID side
           (`LoopbackHidraw` stands in for the kernel's uhid/hidraw) → `PhoneResponder` →
           `HybridClient.session` → the phone.

Prints wall ms and CPU ms per ceremony and their ratios, then the keepalive cadence a program
sees while the phone takes its time, with and without a CPU-bound thread contending for the
GIL in the same process (the bridge's worst case: programs give up on a key after ~1 s silence).

    python benchmarks/bridge.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ceremony import Air, AirScanner
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
)

from hybrid.authenticator import ApprovalRequest, SoftwareAuthenticator, answer_qr
from hybrid.bridge.daemon import Bridge
from hybrid.bridge.loopback import LoopbackHidraw, open_device
from hybrid.bridge.request import BridgeRequest
from hybrid.desktop import HybridClient
from hybrid.status import Status
from tunnel_server import ServerConfig, TunnelServer

ORIGIN = "https://example.com"
KEEPALIVE = 0xBB  # CTAPHID_KEEPALIVE with the init bit


class Phone:
    """The software phone answering every QR code; `delay` seconds of "user" on the phone."""

    def __init__(self, air: Air, tunnel_url: str) -> None:
        self.auth = SoftwareAuthenticator(approve=self._approve, verifies_user=True)
        self.air = air
        self.tunnel_url = tunnel_url
        self.delay = 0.0
        self.tasks: list[asyncio.Task[Any]] = []

    async def _approve(self, request: ApprovalRequest) -> bool:
        await asyncio.sleep(self.delay)  # the user looking at the phone
        return True

    def __call__(self, url: str) -> None:
        self.tasks.append(asyncio.create_task(answer_qr(url, self.auth, self.air, self.tunnel_url)))


class BenchPresenter:
    def __init__(self, phone: Phone) -> None:
        self.phone = phone

    def request_started(self, request: BridgeRequest, cancel: Callable[[], None]) -> None: ...

    def show_qr(self, url: str) -> None:
        self.phone(url)

    def status(self, status: Status) -> None: ...

    def request_ended(self, outcome: str) -> None: ...

    def notice(self, text: str) -> None: ...

    def close(self) -> None: ...


async def timed(ceremony: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Wall and process CPU seconds of one ceremony."""
    wall, cpu = time.perf_counter(), time.process_time()
    await ceremony()
    return time.perf_counter() - wall, time.process_time() - cpu


def hog(stop: threading.Event) -> None:
    """A pure-Python loop: it holds the GIL as long as the interpreter lets it."""
    count = 0
    while not stop.is_set():
        count += 1


async def main(rounds: int) -> None:
    rp = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    user = PublicKeyCredentialUserEntity(id=b"bench", name="bench", display_name="Bench")
    air = Air()
    async with TunnelServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        phone = Phone(air, server.url)
        client = HybridClient(
            origin=ORIGIN,
            tunnel_url=server.url,
            scanner_backend=AirScanner,
            scanner_kwargs={"air": air},
            timeout=30,
            transports=("hybrid",),
        )
        bridge = Bridge(client, BenchPresenter(phone))
        hidraw = LoopbackHidraw(bridge, asyncio.get_running_loop())
        keepalives: list[float] = []
        hidraw.on_read = lambda r: (
            keepalives.append(time.perf_counter()) if r[4] == KEEPALIVE else None
        )
        serving = asyncio.create_task(hidraw.key.serve())
        device = await asyncio.to_thread(open_device, hidraw)
        fido2 = await asyncio.to_thread(Fido2Client, device, DefaultClientDataCollector(ORIGIN))
        options, _ = rp.register_begin(
            user, resident_key_requirement=ResidentKeyRequirement.REQUIRED
        )
        await asyncio.to_thread(fido2.make_credential, options.public_key)

        async def library() -> None:
            request, _ = rp.authenticate_begin()
            await client.get_assertion(dict(request["publicKey"]), phone)

        async def through_bridge() -> None:
            request, _ = rp.authenticate_begin()
            await asyncio.to_thread(fido2.get_assertion, request.public_key)

        for _ in range(3):  # warm up
            await timed(library)
            await timed(through_bridge)
        results: dict[str, list[tuple[float, float]]] = {"library": [], "bridge": []}
        for _ in range(rounds):
            results["library"].append(await timed(library))
            results["bridge"].append(await timed(through_bridge))

        cadence: dict[str, list[float]] = {}
        phone.delay = 1.5
        for label, load in (("idle", False), ("GIL hog thread", True)):
            stop = threading.Event()
            hogger = threading.Thread(target=hog, args=(stop,), daemon=True)
            if load:
                hogger.start()
            keepalives.clear()
            await timed(through_bridge)
            stop.set()
            if load:
                hogger.join()
            cadence[label] = [b - a for a, b in itertools.pairwise(keepalives)]
        device.close()
        serving.cancel()
        await asyncio.gather(serving, *phone.tasks, return_exceptions=True)

    def median_ms(label: str, index: int) -> float:
        return statistics.median(r[index] for r in results[label]) * 1000

    print(f"rounds: {rounds} (medians per discoverable sign-in, BLE excluded)")
    for label in ("library", "bridge"):
        print(f"{label:8} wall {median_ms(label, 0):8.2f} ms   cpu {median_ms(label, 1):8.2f} ms")
    print(
        f"ratio bridge / library: wall {median_ms('bridge', 0) / median_ms('library', 0):.2f}"
        f"   cpu {median_ms('bridge', 1) / median_ms('library', 1):.2f}"
    )
    print("\nkeepalive gaps a program sees while the phone takes 1.5 s (target: every <= 100 ms)")
    for label, gaps in cadence.items():
        if not gaps:
            print(f"{label:15} no keepalives seen")
            continue
        median, most = statistics.median(gaps) * 1000, max(gaps) * 1000
        count = len(gaps) + 1
        print(f"{label:15} {count:3} keepalives   median {median:6.1f} ms   max {most:6.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
