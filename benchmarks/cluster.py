#!/usr/bin/env python3
"""Benchmark of tunnels through HAProxy + N tunnel-server nodes against one node direct.

Not a test. Three setups run side by side and rounds alternate between them, so load from
elsewhere on the machine hits all of them: one `tunnel_server` reached directly, HAProxy in
front of one node (what HAProxy alone costs), and HAProxy in front of two nodes (both cores).
Clients are the raw-socket clients of `relay_common.py` (as in `tunnel_relay.py`), spread
over source addresses 127.0.0.2-41. CPU is `utime + stime` from /proc of every server-side
process, HAProxy included, so "per CPU-second" figures count the whole cluster's work.

Phases per round: (1) relay: fresh tunnels, each bursting 64 messages of 256 bytes each way;
(2) life cycles: new, connect, one message each way, close, 50 at a time.

"cores busy" is server-side CPU-seconds per wall second; the per-process split also shows
the clients, which share the same cores.

Run: `python benchmarks/cluster.py` (about a minute and a half) or `--rounds 2` for a quick look.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import re
import resource
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
from tunnel_relay import server

from tunnel_server.cluster.testing import free_port, start_cluster, stop_cluster

ROUTING_ID_LINE = re.compile(rb"(?im)^x-cable-routing-id: *([0-9a-f]{6})\r?$")
NUMBERS = itertools.count(1)


class HeadClient(Client):
    """A raw client that keeps the upgrade response's head (for the routing-ID header)."""

    head = b""

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.head += data
        super().data_received(data)


@dataclass
class Setup:
    """One way to reach tunnels: a port, and every process that works for it."""

    name: str
    port: int
    pids: dict[str, int]
    opened: int = 0

    def cpu(self) -> dict[str, float]:
        return {role: process_cpu(pid) for role, pid in self.pids.items()}

    async def open(self, path: str) -> HeadClient:
        self.opened += 1
        return await connect(self.port, path, self.opened, HeadClient)

    async def pair(self) -> Pair:
        tunnel = f"{next(NUMBERS):032X}"
        phone = await self.open(f"/cable/new/{tunnel}")
        match = ROUTING_ID_LINE.search(phone.head)
        assert match is not None, phone.head
        desktop = await self.open(f"/cable/connect/{match[1].decode()}/{tunnel}")
        return phone, desktop


@dataclass
class Tally:
    """Work, wall time and CPU per process role over all rounds."""

    work: int = 0
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, work: int, wall: float, cpu: dict[str, float]) -> None:
        self.work += work
        self.wall += wall
        for role, seconds in cpu.items():
            self.cpu[role] = self.cpu.get(role, 0.0) + seconds

    @property
    def total_cpu(self) -> float:
        """Server-side CPU: every process but the clients."""
        return sum(sec for role, sec in self.cpu.items() if role != "clients")


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(
    setup: Setup, work: Callable[[], Awaitable[None]]
) -> tuple[float, dict[str, float]]:
    """(wall seconds, CPU seconds per role) spent on `work`; role "clients" is this process."""
    before, started = {**setup.cpu(), "clients": client_cpu()}, time.perf_counter()
    await work()
    wall = time.perf_counter() - started
    clients = client_cpu()
    await asyncio.sleep(0.2)  # let every process account for the last of its work
    after = {**setup.cpu(), "clients": clients}
    return wall, {role: after[role] - before[role] for role in before}


async def relay_round(setup: Setup, tunnels: int, tally: Tally) -> None:
    pairs = await open_pairs(setup.pair, tunnels, 50)
    await asyncio.sleep(0.2)
    tally.add(2 * BURST * tunnels, *await measure(setup, lambda: bursts(pairs)))
    await close_pairs(pairs)


async def lifecycle_round(setup: Setup, count: int, tally: Tally) -> None:
    tally.add(count, *await measure(setup, lambda: life_cycles(setup.pair, count, 50)))


@contextlib.asynccontextmanager
async def direct() -> AsyncIterator[Setup]:
    async with server("tunnel_server", False) as target:
        yield Setup("1 node, direct", target.port, {"node 1": target.proc.pid})


@contextlib.asynccontextmanager
async def cluster(nodes: int) -> AsyncIterator[Setup]:
    port = free_port()
    running = await start_cluster("--nodes", str(nodes), "--port", str(port), "--", "--grace", "1")
    try:
        pids = {f"node {i}": n.pid for i, n in enumerate(running.nodes.values(), 1)}
        pids["haproxy"] = running.haproxy_pid
        yield Setup(f"HAProxy + {nodes} node{'s' * (nodes > 1)}", port, pids)
    finally:
        await stop_cluster(running, 30)
        running.stderr.close()


async def bench(rounds: int, tunnels: int) -> list[tuple[Setup, Tally, Tally]]:
    async with direct() as one, cluster(1) as front_one, cluster(2) as front_two:
        setups = [one, front_one, front_two]
        relay = {s.name: Tally() for s in setups}
        cycles = {s.name: Tally() for s in setups}
        for setup in setups:  # warm-up, not counted
            await lifecycle_round(setup, 100, Tally())
        for r in range(rounds):
            order = setups if r % 2 == 0 else setups[::-1]
            for setup in order:
                await relay_round(setup, tunnels, relay[setup.name])
            for setup in order:
                await lifecycle_round(setup, tunnels, cycles[setup.name])
        return [(s, relay[s.name], cycles[s.name]) for s in setups]


def report(results: list[tuple[Setup, Tally, Tally]]) -> str:
    lines = [
        "| setup | msgs / CPU-s | msgs / s | cores busy (relay) | HAProxy µs / msg | "
        "tunnels / CPU-s | tunnels / s | HAProxy µs / tunnel | cores busy per process (relay) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for setup, relay, cycles in results:
        haproxy_msg = 1e6 * relay.cpu.get("haproxy", 0.0) / relay.work
        haproxy_tunnel = 1e6 * cycles.cpu.get("haproxy", 0.0) / cycles.work
        split = ", ".join(f"{role} {sec / relay.wall:.2f}" for role, sec in relay.cpu.items())
        lines.append(
            f"| {setup.name} | {relay.work / relay.total_cpu:,.0f} | {relay.work / relay.wall:,.0f}"
            f" | {relay.total_cpu / relay.wall:.2f} | {haproxy_msg:.1f} | "
            f"{cycles.work / cycles.total_cpu:,.0f} | {cycles.work / cycles.wall:,.0f} | "
            f"{haproxy_tunnel:.0f} | {split} |"
        )
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=6, help="rounds per setup (%(default)s)")
    parser.add_argument("--tunnels", type=int, default=300, help="tunnels per round (%(default)s)")
    args = parser.parse_args()
    started = time.monotonic()
    # uvloop, when installed, makes the clients cheaper; every server runs plain asyncio.
    results = run(bench(args.rounds, args.tunnels), importlib.util.find_spec("uvloop") is not None)
    print(f"# {time.monotonic() - started:.0f} s", file=sys.stderr)
    print(report(results))


if __name__ == "__main__":
    cli()
