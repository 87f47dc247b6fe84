"""Benchmark: one hybrid sign-in (handshake + getAssertion) over a loopback tunnel, BLE excluded.

Compares, in one run and one process, the time of a whole ceremony through our code
(`HybridClient` ↔ our tunnel server ↔ `answer_qr` + `SoftwareAuthenticator`) with a floor:
the same public-key operations alone (P-256 key generation, ECDH, one ECDSA signature) plus a
bare websockets relay carrying messages of the same sizes. Prints the ratio (target <= 1.5)
and where the rest of the time goes (profile grouped by package).

    python benchmarks/ceremony.py [--rounds N]

The radio is replaced by an in-memory "air" feeding a bleak backend, so the advert still goes
through bleak and our scanner; nothing waits on Bluetooth timing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import time
from collections import defaultdict
from typing import Any

from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
)
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from hybrid.authenticator import SoftwareAuthenticator, answer_qr, approve_all
from hybrid.desktop import HybridClient
from hybrid.protocol.constants import FIDO_SERVICE_UUID
from hybrid.status import Status
from tunnel_server import ServerConfig, TunnelServer

ORIGIN = "https://example.com"
# Sizes of the messages one QR sign-in sends through the tunnel (phone→desktop first):
# handshake 81 each way, post-handshake ~192, update 528, request ~112, reply ~176, shutdown 32.
DESKTOP_MESSAGES = (81, 112, 32)
PHONE_MESSAGES = (81, 192, 528, 176)


class Air:
    """In-memory stand-in for the radio: advertisers put service data, scanners get it."""

    def __init__(self) -> None:
        self.listeners: list[AirScanner] = []

    async def advertise(self, service_data: bytes) -> None:
        for listener in list(self.listeners):
            listener.hear(service_data)

    async def stop(self) -> None:
        return None


class AirScanner(BaseBleakScanner):
    """A bleak backend listening to `Air`."""

    def __init__(self, detection_callback: Any, service_uuids: Any, *args: Any, **kwargs: Any):
        super().__init__(detection_callback, service_uuids)
        self.air: Air = kwargs["air"]

    async def start(self) -> None:
        self.seen_devices = {}
        self.air.listeners.append(self)

    async def stop(self) -> None:
        if self in self.air.listeners:
            self.air.listeners.remove(self)

    def hear(self, service_data: bytes) -> None:
        adv = AdvertisementData(
            local_name=None,
            manufacturer_data={},
            service_data={FIDO_SERVICE_UUID: service_data},
            service_uuids=[],
            tx_power=None,
            rssi=-50,
            platform_data=(),
        )
        device = self.create_or_update_device("phone", "00:00:00:00:00:01", None, {}, adv)
        self.call_detection_callbacks(device, adv)

    def set_scanning_filter(self, **kwargs: Any) -> None:
        return None


class Timeline:
    """Time of each desktop progress stage, relative to the start of the ceremony."""

    def __init__(self) -> None:
        self.started = 0.0
        self.marks: dict[str, float] = {}

    def __call__(self, status: Status) -> None:
        self.marks.setdefault(status.stage.value, time.perf_counter() - self.started)


async def ours_once(
    client: HybridClient,
    phone: SoftwareAuthenticator,
    air: Air,
    url: str,
    rp: Fido2Server,
    timeline: Timeline,
) -> float:
    options, _ = rp.authenticate_begin()
    tasks: list[asyncio.Task[Any]] = []

    def show_qr(qr_url: str) -> None:
        tasks.append(asyncio.create_task(answer_qr(qr_url, phone, air, url)))

    timeline.marks.clear()
    started = timeline.started = time.perf_counter()
    await client.get_assertion(dict(options["publicKey"]), show_qr)
    timeline.marks["desktop returned"] = time.perf_counter() - started
    await tasks[0]
    return time.perf_counter() - started


def crypto_floor_once() -> float:
    """The public-key work of one ceremony: 3 key pairs, 4 ECDH, 1 ECDSA signature."""
    started = time.perf_counter()
    qr = ec.generate_private_key(ec.SECP256R1())
    desktop_e = ec.generate_private_key(ec.SECP256R1())
    phone_e = ec.generate_private_key(ec.SECP256R1())
    desktop_e.exchange(ec.ECDH(), phone_e.public_key())
    qr.exchange(ec.ECDH(), phone_e.public_key())
    phone_e.exchange(ec.ECDH(), desktop_e.public_key())
    phone_e.exchange(ec.ECDH(), qr.public_key())
    desktop_e.sign(os.urandom(32), ec.ECDSA(hashes.SHA256()))
    return time.perf_counter() - started


async def relay_floor_once(port: int) -> float:
    """A bare websockets relay carrying messages of the same sizes, in the same order."""
    started = time.perf_counter()
    async with (
        connect(f"ws://127.0.0.1:{port}/p", compression=None) as phone,
        connect(f"ws://127.0.0.1:{port}/d", compression=None) as desktop,
    ):
        await desktop.send(os.urandom(DESKTOP_MESSAGES[0]))
        await phone.recv()
        for size in PHONE_MESSAGES[:3]:
            await phone.send(os.urandom(size))
        for _ in range(3):
            await desktop.recv()
        await desktop.send(os.urandom(DESKTOP_MESSAGES[1]))
        await phone.recv()
        await phone.send(os.urandom(PHONE_MESSAGES[3]))
        await desktop.recv()
        await desktop.send(os.urandom(DESKTOP_MESSAGES[2]))
        await phone.recv()
    return time.perf_counter() - started


class BareRelay:
    """The smallest relay that pairs one phone (/p) with one desktop (/d)."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[ServerConnection]] = {}

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        me, other = ("p", "d") if ws.request.path == "/p" else ("d", "p")
        loop = asyncio.get_running_loop()
        mine = self.waiting.setdefault(me, loop.create_future())
        mine.set_result(ws)
        peer = await self.waiting.setdefault(other, loop.create_future())
        try:
            async for message in ws:
                await peer.send(message)
        finally:
            self.waiting.pop(me, None)
            await peer.close()


def by_package(profile: cProfile.Profile) -> list[tuple[str, float]]:
    stats = pstats.Stats(profile)
    totals: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in filename:
            package = filename.split("site-packages/")[1].split("/")[0]
        elif "/hybrid/" in filename or "/tunnel_server/" in filename:
            package = "fido-hybrid (" + filename.rsplit("/", 2)[-2] + ")"
        elif filename.startswith("~") or "<built-in" in filename:
            package = "builtins (C calls: crypto, sockets, select)"
        else:
            package = "python stdlib (asyncio, ...)"
        totals[package] += tottime
    return sorted(totals.items(), key=lambda item: -item[1])


async def main(rounds: int) -> None:
    rp = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    # Models a phone whose approval is its screen-lock check, as the desktop asks for UV.
    phone = SoftwareAuthenticator(approve=approve_all, verifies_user=True)
    air = Air()
    timeline = Timeline()
    stages: dict[str, list[float]] = defaultdict(list)
    async with TunnelServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        client = HybridClient(
            origin=ORIGIN,
            tunnel_url=server.url,
            scanner_backend=AirScanner,
            scanner_kwargs={"air": air},
            on_status=timeline,
            timeout=30,
            transports=("hybrid",),
        )
        user = PublicKeyCredentialUserEntity(id=b"bench", name="bench", display_name="Bench")
        options, _ = rp.register_begin(
            user, resident_key_requirement=ResidentKeyRequirement.REQUIRED
        )
        tasks: list[asyncio.Task[Any]] = []
        await client.make_credential(
            dict(options["publicKey"]),
            lambda u: tasks.append(asyncio.create_task(answer_qr(u, phone, air, server.url))),
        )
        await tasks[0]
        relay = BareRelay()
        async with serve(relay.handler, "127.0.0.1", 0, compression=None) as bare:
            port = bare.sockets[0].getsockname()[1]
            for _ in range(3):  # warm up
                await ours_once(client, phone, air, server.url, rp, timeline)
                await relay_floor_once(port)
            # Rounds alternate between ours and the floor, so load from elsewhere hits both.
            ours, relay_times, crypto_times = [], [], []
            for _ in range(rounds):
                ours.append(await ours_once(client, phone, air, server.url, rp, timeline))
                for stage, seconds in timeline.marks.items():
                    stages[stage].append(seconds)
                relay_times.append(await relay_floor_once(port))
                crypto_times.append(crypto_floor_once())
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(max(3, rounds // 4)):
            await ours_once(client, phone, air, server.url, rp, timeline)
        profile.disable()

    ours_ms = statistics.median(ours) * 1000
    crypto_ms = statistics.median(crypto_times) * 1000
    relay_ms = statistics.median(relay_times) * 1000
    floor_ms = crypto_ms + relay_ms
    print(f"rounds: {rounds} (medians)")
    print(f"ours:  handshake + getAssertion, BLE excluded   {ours_ms:8.2f} ms")
    print(f"floor: public-key operations alone          {crypto_ms:8.2f} ms")
    print(f"floor: bare websockets relay, same messages  {relay_ms:8.2f} ms")
    print(f"ratio ours / floor: {ours_ms / floor_ms:.2f}  (target <= 1.5)")
    print("\ndesktop timeline (median ms since the ceremony started):")
    for stage, values in stages.items():
        print(f"  {statistics.median(values) * 1000:6.2f}  {stage}")
    print("\nwhere our time goes (profile, own time by package):")
    rows = by_package(profile)
    total = sum(seconds for _, seconds in rows) or 1.0
    for package, seconds in rows[:10]:
        print(f"  {seconds / total:6.1%}  {package}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=40)
    asyncio.run(main(parser.parse_args().rounds))
