"""Run `python -m tunnel_server.cluster` as a real subprocess, for tests and the benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import IO

from tunnel_server.testing import ServerStartError

from . import processes
from .runtime import node_states

_NODE = re.compile(r"node ([0-9A-F]{6}) port (\d+) pid (\d+)")
_HAPROXY = re.compile(r"haproxy port (\d+) pid (\d+)")
_LISTENING = re.compile(r"listening on (wss?://\S+)")


@dataclass(frozen=True)
class NodeLine:
    routing_id: str
    port: int
    pid: int


@dataclass
class ClusterProcess:
    """A running cluster as its stdout described it."""

    proc: asyncio.subprocess.Process
    stderr: IO[bytes]
    url: str = ""
    haproxy_pid: int = 0
    nodes: dict[str, NodeLine] = field(default_factory=dict)
    #: Every pid the cluster ever announced, so a test can check none survives it.
    pids: set[int] = field(default_factory=set)

    async def read_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            line = (await self.proc.stdout.readline()).decode().strip()
        if not line:
            raise ServerStartError(f"the cluster ended its output; stderr:\n{self.stderr_tail()}")
        self._note(line)
        return line

    def _note(self, line: str) -> None:
        if node := _NODE.fullmatch(line):
            info = NodeLine(node[1], int(node[2]), int(node[3]))
            self.nodes[info.routing_id] = info
            self.pids.add(info.pid)
        elif haproxy := _HAPROXY.fullmatch(line):
            self.haproxy_pid = int(haproxy[2])
            self.pids.add(self.haproxy_pid)
        elif listening := _LISTENING.fullmatch(line):
            self.url = listening[1]

    async def next_node(self, timeout: float = 10.0) -> NodeLine:
        """The next `node …` line, e.g. after a node was restarted."""
        while True:
            line = await self.read_line(timeout)
            if match := _NODE.fullmatch(line):
                return self.nodes[match[1]]

    def stats_socket(self) -> str:
        """HAProxy's runtime-API socket, found next to the config on HAProxy's command line."""
        with open(f"/proc/{self.haproxy_pid}/cmdline", "rb") as f:
            argv = f.read().decode().split("\0")
        config = argv[argv.index("-f") + 1]
        return os.path.join(os.path.dirname(config), "haproxy.sock")

    async def node_healthy(self, routing_id: str) -> bool | None:
        """Whether HAProxy sees the node `routing_id` healthy; None if its API does not say."""
        with contextlib.suppress(OSError, TimeoutError):
            for state in await node_states(self.stats_socket()):
                if state.name == f"node_{routing_id}":
                    return state.healthy
        return None

    def stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-4000:].decode(errors="replace")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for HAProxy, which cannot report port 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, 0), family=family) as sock:
        return int(sock.getsockname()[1])


def alive(pids: Iterable[int]) -> list[int]:
    """The pids in `pids` that still exist (a zombie counts: someone failed to reap it)."""
    found = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        found.append(pid)
    return found


def running(pids: Iterable[int]) -> list[int]:
    """The pids in `pids` still running: zombies (dead, waiting to be reaped) do not count.

    For the case where the supervisor itself was killed: its children are then reaped by
    whatever init the machine has, which in some containers never happens.
    """
    found = []
    for pid in alive(pids):
        with contextlib.suppress(FileNotFoundError):
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state not in ("Z", "X"):
                found.append(pid)
    return found


async def start_cluster(*args: str, start_timeout: float = 30.0) -> ClusterProcess:
    """Start `python -m tunnel_server.cluster *args`; return once it printed `listening on`."""
    stderr = tempfile.TemporaryFile()  # noqa: SIM115  # lives as long as the cluster
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tunnel_server.cluster",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    cluster = ClusterProcess(proc, stderr)
    try:
        while not cluster.url:
            await cluster.read_line(start_timeout)
    except BaseException:
        await stop_cluster(cluster, 30.0)
        stderr.close()
        raise
    return cluster


async def stop_cluster(cluster: ClusterProcess, timeout: float) -> int:
    """SIGTERM the cluster and wait for it (SIGKILL after `timeout`); return its exit code."""
    return await processes.stop(cluster.proc, timeout)


@contextlib.asynccontextmanager
async def running_cluster(
    *args: str, start_timeout: float = 30.0, stop_timeout: float = 30.0
) -> AsyncIterator[ClusterProcess]:
    """A started cluster, SIGTERMed (a graceful drain) when the block ends."""
    cluster = await start_cluster(*args, start_timeout=start_timeout)
    try:
        yield cluster
    finally:
        await stop_cluster(cluster, stop_timeout)
        cluster.stderr.close()
