#!/usr/bin/env python3
"""Benchmark of `tunnel_server` against the smallest correct relay on websockets (the floor).

Not a test. Each server runs in its own process and is measured from /proc: CPU time
(utime + stime of /proc/PID/stat) around each phase, and VmRSS for memory, so the cost of the
clients (the raw-socket clients of `relay_common.py`, spread over source addresses
127.0.0.2-41 so the per-IP limit is not what is measured) does not blur the figures.

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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from relay_common import (
    BURST,
    Client,
    Pair,
    bursts,
    close_pairs,
    connect,
    life_cycles,
    open_pairs,
    process_cpu,
    run,
)

CORES = sorted(os.sched_getaffinity(0))
ROUTING_ID = "0A0B0C"
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


class Target:
    """A server process under test and how to reach it."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc, self.port, self.opened = proc, port, 0

    def cpu(self) -> float:
        return process_cpu(self.proc.pid)

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmRSS:"))

    async def open(self, path: str) -> Client:
        self.opened += 1
        return await connect(self.port, path, self.opened, Client)

    async def pair(self) -> Pair:
        tunnel = f"{next(TUNNEL_NUMBERS):032X}"
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


async def measure(target: Target, work: Callable[[], Awaitable[None]]) -> float:
    """Server CPU-seconds spent on `work` (plus the moment the server needs to settle)."""
    before = target.cpu()
    await work()
    await asyncio.sleep(0.2)
    return target.cpu() - before


# -- phases --------------------------------------------------------------------------------


async def idle_memory(target: Target, tunnels: int) -> list[float]:
    """RSS growth in KiB per tunnel over a warm baseline: with `tunnels` idle tunnels open,
    after closing them, and the same again (a second cycle shows whether memory is reused)."""
    await lifecycles(target, 50, 10)  # warm the code paths, not the memory
    await asyncio.sleep(0.3)
    base = target.rss()
    figures = []
    for _ in range(2):
        pairs = await open_pairs(target.pair, tunnels, 100)
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
    pairs = await open_pairs(target.pair, tunnels, 100)
    await asyncio.sleep(0.2)
    cpu = await measure(target, lambda: bursts(pairs))
    await close_pairs(pairs)
    return 2 * BURST * tunnels, cpu


async def lifecycles(target: Target, count: int, width: int) -> float:
    """Server CPU-seconds for `count` whole tunnel life cycles, `width` at a time."""
    return await measure(target, lambda: life_cycles(target.pair, count, width))


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
