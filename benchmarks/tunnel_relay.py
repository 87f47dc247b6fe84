#!/usr/bin/env python3
"""Benchmark of `tunnel_server` against the smallest correct relay on websockets (the floor).

Not a test. Each server runs in its own process and is measured from /proc: CPU time
(utime + stime of /proc/PID/stat) around each phase, and VmRSS for memory, so the cost of the
clients (raw sockets in this process, spread over source addresses 127.0.0.2-41 so the per-IP
limit is not what is measured) does not blur the figures.

Phases, per server and event loop (asyncio, and uvloop when installed):
1. idle memory: RSS growth per open, joined, idle tunnel with N tunnels (5,000) open;
   then RSS once they are closed again;
2. relay: rounds of many tunnels, each sending a burst of 64 messages each way at once;
   relayed messages per server CPU-second, and the ratio to the floor;
3. life cycles: new, connect, one message each way, close; per server CPU-second.

Run: `python benchmarks/tunnel_relay.py` (a few minutes) or `--quick` (under a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = sorted(os.sched_getaffinity(0))
ROUTING_ID = "0A0B0C"
SOURCES = [f"127.0.0.{i}" for i in range(2, 42)]
BURST = 64
MESSAGE = bytes(range(256))
TUNNEL_NUMBERS = itertools.count(1)


# -- the floor: the smallest correct relay on websockets, run with `--serve-floor` ---------


def serve_floor(use_uvloop: bool) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.http11 import Request, Response

    waiting: dict[str, tuple[ServerConnection, asyncio.Future[ServerConnection]]] = {}

    async def pump(src: ServerConnection, dst: ServerConnection) -> None:
        try:
            async for message in src:
                await dst.send(message)
        finally:
            await dst.close()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = ws.request.path.split("/")
        if parts[2] == "new":
            ready = asyncio.get_running_loop().create_future()
            waiting[parts[3]] = (ws, ready)
            try:
                desktop = await ready
            finally:
                waiting.pop(parts[3], None)
            await pump(ws, desktop)
        else:
            phone, ready = waiting.pop(parts[4])
            ready.set_result(ws)
            await pump(ws, phone)

    def routing(ws: ServerConnection, request: Request, response: Response) -> None:
        response.headers["X-caBLE-Routing-ID"] = ROUTING_ID

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, subprotocols=["fido.cable"],  # type: ignore[list-item]
                         compression=None, max_size=16384, process_response=routing,
                         backlog=1024) as server:  # fmt: skip
            print(f"listening on ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
            await asyncio.Future()

    run(main(), use_uvloop)


def run(main: Coroutine[Any, Any, T], use_uvloop: bool) -> T:
    factory = None
    if use_uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


# -- cheap clients: raw WebSocket framing over asyncio protocols --------------------------


def frame(payload: bytes, opcode: int = 2) -> bytes:
    """A client frame with a zero masking key (so the payload goes out as is)."""
    size = len(payload)
    if size < 126:
        return bytes([0x80 | opcode, 0x80 | size]) + b"\0\0\0\0" + payload
    return bytes([0x80 | opcode, 0xFE]) + size.to_bytes(2, "big") + b"\0\0\0\0" + payload


BURST_FRAMES = frame(MESSAGE) * BURST
ONE_FRAME = frame(MESSAGE)
CLOSE_FRAME = frame((1000).to_bytes(2, "big"), opcode=8)


class Client(asyncio.Protocol):
    """One raw WebSocket client: counts binary messages, answers the closing handshake."""

    def __init__(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.buf = bytearray()
        self.upgraded = False
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.received = 0
        self.target = 0
        self.waiter: asyncio.Future[None] | None = None
        self.close_sent = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(bytes(buf[:end]).decode()))
                return
            del buf[: end + 4]
            self.upgraded = True
            self.opened.set_result(None)
        pos, size, got = 0, len(buf), 0
        while size - pos >= 2:
            length, head = buf[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = (buf[pos + 2] << 8) | buf[pos + 3], 4
            end = pos + head + length
            if end > size:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 2:
                got += 1
            elif opcode == 8 and not self.close_sent:
                self.close()
            pos = end
        del buf[:pos]
        if got:
            self.received += got
            if self.waiter is not None and self.received >= self.target:
                self.waiter.set_result(None)
                self.waiter = None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the upgrade"))
        if self.waiter is not None:
            self.waiter.set_exception(ConnectionError("closed while waiting for messages"))
        self.lost.set_result(None)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        self.close_sent = True
        self.send(CLOSE_FRAME)

    async def messages(self, count: int) -> None:
        """Wait until `count` messages have arrived in total."""
        if self.received < count:
            self.target = count
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter


class Target:
    """A server process under test and how to reach it."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc, self.port, self.opened = proc, port, 0

    def cpu(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmRSS:"))

    async def open(self, path: str) -> Client:
        self.opened += 1
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: fido.cable\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        source = SOURCES[self.opened % len(SOURCES)]
        _, client = await loop.create_connection(
            lambda: Client(request), "127.0.0.1", self.port, local_addr=(source, 0)
        )
        await client.opened
        return client

    async def pair(self, number: int) -> tuple[Client, Client]:
        tunnel = f"{number:032X}"
        phone = await self.open(f"/cable/new/{tunnel}")
        desktop = await self.open(f"/cable/connect/{ROUTING_ID}/{tunnel}")
        return phone, desktop


@contextlib.asynccontextmanager
async def server(kind: str, use_uvloop: bool) -> AsyncIterator[Target]:
    if kind == "floor":
        cmd = [sys.executable, __file__, "--serve-floor"]
    else:
        cmd = [sys.executable, "-m", "tunnel_server", "--port", "0", "--routing-id", ROUTING_ID]
        # Thousands of tunnels come from only len(SOURCES) addresses.
        cmd += ["--max-tunnels-per-ip", "100000"]
    if use_uvloop:
        cmd.append("--uvloop")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    if len(CORES) >= 2:  # servers on one core, clients on the others
        os.sched_setaffinity(proc.pid, {CORES[-1]})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        yield Target(proc, int(line.rsplit(":", 1)[1]))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def gather_limited(jobs: Iterator[Awaitable[object]], width: int) -> None:
    """Run awaitables with at most `width` in flight (to stay under the accept backlog)."""

    async def worker() -> None:
        for job in jobs:
            await job

    await asyncio.gather(*(worker() for _ in range(width)))


async def measure(target: Target, work: Callable[[], Awaitable[None]]) -> float:
    """Server CPU-seconds spent on `work` (plus the moment the server needs to settle)."""
    before = target.cpu()
    await work()
    await asyncio.sleep(0.2)
    return target.cpu() - before


# -- phases --------------------------------------------------------------------------------


async def open_pairs(target: Target, count: int) -> list[tuple[Client, Client]]:
    pairs: list[tuple[Client, Client]] = []

    async def one() -> None:
        pairs.append(await target.pair(next(TUNNEL_NUMBERS)))

    await gather_limited((one() for _ in range(count)), 100)
    return pairs


async def idle_memory(target: Target, tunnels: int) -> list[float]:
    """RSS growth in KiB per tunnel over a warm baseline: with `tunnels` idle tunnels open,
    after closing them, and the same again (a second cycle shows whether memory is reused)."""
    await lifecycles(target, 50, 10)  # warm the code paths, not the memory
    await asyncio.sleep(0.3)
    base = target.rss()
    figures = []
    for _ in range(2):
        pairs = await open_pairs(target, tunnels)
        await asyncio.sleep(1.0)
        figures.append((target.rss() - base) / tunnels / 1024)
        for _, desktop in pairs:
            desktop.close()
        for phone, desktop in pairs:
            await phone.lost
            await desktop.lost
        await asyncio.sleep(1.0)
        figures.append((target.rss() - base) / tunnels / 1024)
    return figures


async def relay_round(target: Target, tunnels: int) -> tuple[int, float]:
    """(messages relayed, server CPU-seconds): fresh tunnels, each bursting 64 each way."""
    pairs = await open_pairs(target, tunnels)
    await asyncio.sleep(0.2)

    async def bursts() -> None:
        for phone, desktop in pairs:
            phone.send(BURST_FRAMES)
            desktop.send(BURST_FRAMES)
        for phone, desktop in pairs:
            await phone.messages(BURST)
            await desktop.messages(BURST)

    cpu = await measure(target, bursts)
    for _, desktop in pairs:
        desktop.close()
    for phone, _ in pairs:
        await phone.lost
    return 2 * BURST * tunnels, cpu


async def lifecycles(target: Target, count: int, width: int) -> float:
    """Server CPU-seconds for `count` whole tunnel life cycles, `width` at a time."""

    async def one() -> None:
        phone, desktop = await target.pair(next(TUNNEL_NUMBERS))
        desktop.send(ONE_FRAME)
        await phone.messages(1)
        phone.send(ONE_FRAME)
        await desktop.messages(1)
        desktop.close()
        await desktop.lost
        await phone.lost

    return await measure(target, lambda: gather_limited((one() for _ in range(count)), width))


@dataclass
class Tally:
    """Work done and server CPU spent over several rounds, and each round's rate."""

    work: int = 0
    cpu: float = 0.0
    rates: list[float] = field(default_factory=list)

    def add(self, work: int, cpu: float) -> None:
        self.work += work
        self.cpu += cpu
        self.rates.append(work / cpu)

    @property
    def rate(self) -> float:
        return self.work / self.cpu


@dataclass
class Result:
    kind: str
    loop: str
    memory: list[float]
    relay: Tally = field(default_factory=Tally)
    cycles: Tally = field(default_factory=Tally)


KINDS = ("floor", "tunnel_server")


async def bench(use_uvloop: bool, quick: bool) -> dict[str, Result]:
    """Both servers side by side; rounds alternate between them so load noise hits both."""
    idle_tunnels = 1000 if quick else 5000
    rounds, tunnels = (3, 200) if quick else (10, 500)
    cycle_rounds, cycles = (3, 250) if quick else (10, 600)
    loop = "uvloop" if use_uvloop else "asyncio"
    async with server("floor", use_uvloop) as floor, server("tunnel_server", use_uvloop) as ours:
        targets = {"floor": floor, "tunnel_server": ours}
        results = {
            k: Result(k, loop, await idle_memory(t, idle_tunnels)) for k, t in targets.items()
        }
        for r in range(rounds):
            for kind in KINDS[:: 1 if r % 2 else -1]:
                results[kind].relay.add(*await relay_round(targets[kind], tunnels))
        for r in range(cycle_rounds):
            for kind in KINDS[:: 1 if r % 2 else -1]:
                results[kind].cycles.add(cycles, await lifecycles(targets[kind], cycles, 100))
    return results


async def main(quick: bool) -> list[Result]:
    loops = [False] + ([True] if importlib.util.find_spec("uvloop") else [])
    results: list[Result] = []
    for use_uvloop in loops:
        started = time.monotonic()
        results.extend((await bench(use_uvloop, quick)).values())
        took = time.monotonic() - started
        print(f"# {'uvloop' if use_uvloop else 'asyncio'}: {took:.0f} s", file=sys.stderr)
    return results


def report(results: list[Result], quick: bool) -> str:
    floors = {r.loop: r for r in results if r.kind == "floor"}
    idle = 1000 if quick else 5000
    lines = [
        "| server | loop | msgs / CPU-s | vs floor (per-round range) | life cycles / CPU-s | "
        f"RSS / idle tunnel ({idle} open) | after close | 2nd cycle open / closed |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        floor = floors[r.loop]
        ratios = [a / b for a, b in zip(r.relay.rates, floor.relay.rates, strict=True)]
        loaded, after, loaded2, after2 = r.memory
        lines.append(
            f"| {r.kind} | {r.loop} | {r.relay.rate:,.0f} | "
            f"{r.relay.rate / floor.relay.rate:.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
            f"{r.cycles.rate:,.0f} | {loaded:.1f} KiB | {after:.1f} KiB | "
            f"{loaded2:.1f} / {after2:.1f} KiB |"
        )
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--uvloop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(args.uvloop)
        return
    if len(CORES) >= 2:
        os.sched_setaffinity(0, set(CORES[:-1]))
    # uvloop, when installed, makes the clients cheaper; each server picks its own loop.
    results = run(main(args.quick), importlib.util.find_spec("uvloop") is not None)
    print(report(results, args.quick))


if __name__ == "__main__":
    cli()
