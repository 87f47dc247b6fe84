"""`Cluster`: start N tunnel-server nodes and HAProxy in front, keep them up, drain on stop.

Order matters both ways. Start: nodes first (each prints its port), then HAProxy with the
configuration generated for exactly those nodes, then wait until HAProxy's health checks see
every node. Stop: HAProxy stops accepting (soft stop, live connections stay), the nodes get
SIGTERM and finish joined tunnels within their grace, and HAProxy exits once the last
connection through it has closed. A node that dies meanwhile is restarted on the same port
with the same routing ID, so HAProxy's map stays right.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from . import processes
from .errors import ClusterError, ClusterReason
from .haproxy import Front, Node, render
from .runtime import node_states

#: Where Debian puts haproxy; /usr/sbin is often not on an unprivileged user's PATH.
HAPROXY_PLACES = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
#: Restart back-off for a node that keeps dying: first delay, ceiling (seconds).
RESTART_DELAY = (0.2, 5.0)
#: A node that ran this long (seconds) before dying is restarted after the shortest delay.
STABLE_AFTER = 10.0
NODE_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ClusterSettings:
    routing_ids: tuple[str, ...]
    port: int
    host: str = "127.0.0.1"
    tls_cert: str | None = None
    tls_key: str | None = None
    max_connections_per_ip: int = 1000
    #: Flags passed to every node after the ones the cluster sets.
    node_args: tuple[str, ...] = ()
    proxy_protocol: bool = False
    ttl: float = 120.0
    grace: float = 10.0
    close_timeout: float = 5.0
    handshake_timeout: float = 10.0
    haproxy: str | None = None
    start_timeout: float = 20.0


@dataclass
class NodeSlot:
    routing_id: str
    port: int = 0
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


def find_haproxy(explicit: str | None) -> str:
    """The haproxy executable, or `ClusterError` naming the package that provides it."""
    found = explicit if explicit is not None else shutil.which("haproxy")
    if found is None:
        found = next((p for p in HAPROXY_PLACES if os.access(p, os.X_OK)), None)
    if found is None or not os.access(found, os.X_OK):
        raise ClusterError(
            ClusterReason.HAPROXY_MISSING,
            f"HAProxy was not found ({explicit or 'haproxy on PATH, ' + ', '.join(HAPROXY_PLACES)}"
            "): install the Debian/Ubuntu package 'haproxy' (sudo apt-get install haproxy, or "
            "scripts/install-system-packages.sh), or pass --haproxy PATH.",
        )
    return found


def check_port_free(host: str, port: int) -> None:
    """Fail early, before any process starts, when HAProxy could not bind its port."""
    reserve_port(host, port).close()


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket listening on HAProxy's port, held while the nodes pick theirs.

    The nodes listen on ports the kernel chooses; without this it may hand one of them the very
    port HAProxy is about to bind. Raises `ClusterError` when the port cannot be had.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, ValueError) as exc:  # not a taken port: the name is no address
        raise ClusterError(
            ClusterReason.BAD_NODE_FLAGS,
            f"cannot listen on --host {host!r} ({exc}): give an address of this machine, "
            "e.g. 127.0.0.1 or ::.",
        ) from exc
    # HAProxy binds "::" with v4v6, so the IPv4 side of the port must be free too
    dualstack = host == "::" and socket.has_dualstack_ipv6()
    try:
        return socket.create_server((host, port), family=family, dualstack_ipv6=dualstack)
    except OSError as exc:
        raise ClusterError(
            ClusterReason.PORT_TAKEN,
            f"cannot listen on {host}:{port} ({exc.strerror}): stop what uses the port or "
            "pick another --port.",
        ) from exc


def haproxy_max_connections() -> int:
    """Client connections HAProxy can hold with the open-file limit it may raise itself to.

    Each one needs two descriptors (client and node side) plus a few for listeners and checks.
    """
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return 20000
    return max(100, min(20000, (hard - 200) // 2))


class Cluster:
    """The running cluster; `start`, then `supervise` until asked to `stop`."""

    def __init__(self, settings: ClusterSettings, announce: Callable[[str], None]) -> None:
        self.settings = settings
        self.announce = announce
        self.slots = [NodeSlot(rid) for rid in settings.routing_ids]
        self.haproxy: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._dir = tempfile.mkdtemp(prefix="tunnel-cluster-")
        self._socket = os.path.join(self._dir, "haproxy.sock")
        self._haproxy_log: asyncio.Task[None] | None = None
        self.haproxy_died = asyncio.Event()

    @property
    def url(self) -> str:
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        scheme = "ws" if self.settings.tls_cert is None else "wss"
        return f"{scheme}://{host}:{self.settings.port}"

    # -- start -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every process and wait until HAProxy sees all nodes healthy."""
        settings = self.settings
        haproxy = find_haproxy(settings.haproxy)
        with reserve_port(settings.host, settings.port):
            starting = [asyncio.ensure_future(self._start_node(slot)) for slot in self.slots]
            try:
                await asyncio.gather(*starting)
            except BaseException:  # one node failed: the others stop starting (stop() ends them)
                for task in starting:
                    task.cancel()
                await asyncio.gather(*starting, return_exceptions=True)
                raise
        for slot in self.slots:
            self._announce_node(slot)
        await self._start_haproxy(haproxy)
        await self._wait_healthy()
        for slot in self.slots:
            slot.watcher = asyncio.create_task(self._watch(slot))
        assert self.haproxy is not None
        self.announce(f"haproxy port {settings.port} pid {self.haproxy.pid}")

    def node_argv(self, slot: NodeSlot) -> list[str]:
        """The command line of the node in `slot` (its port once known, so restarts keep it)."""
        argv = [sys.executable, "-m", "tunnel_server", "--host", NODE_HOST]
        argv += ["--port", str(slot.port), "--routing-id", slot.routing_id]
        if self.settings.proxy_protocol:
            argv += ["--proxy-protocol", "--trusted-proxies", f"{NODE_HOST}/32"]
        else:
            # Every connection comes from HAProxy's address: the per-client cap is HAProxy's.
            argv += ["--max-connections-per-ip", "1000000"]
        return argv + list(self.settings.node_args)

    async def _start_node(self, slot: NodeSlot) -> None:
        slot.proc = await processes.spawn(self.node_argv(slot))
        what = f"node {slot.routing_id}"
        slot.port = await processes.read_port(slot.proc, what, self.settings.start_timeout)

    def _announce_node(self, slot: NodeSlot) -> None:
        assert slot.proc is not None
        self.announce(f"node {slot.routing_id} port {slot.port} pid {slot.proc.pid}")

    def _write(self, name: str, text: str, mode: int = 0o600) -> str:
        path = os.path.join(self._dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def _front(self) -> Front:
        s = self.settings
        pem = None
        if s.tls_cert is not None and s.tls_key is not None:
            try:
                with open(s.tls_cert) as cert, open(s.tls_key) as key:
                    pem = self._write("front.pem", cert.read().rstrip("\n") + "\n" + key.read())
            except OSError as exc:
                raise ClusterError(
                    ClusterReason.BAD_NODE_FLAGS,
                    f"cannot read --tls-cert/--tls-key ({exc}): check both paths.",
                ) from exc
        return Front(
            map_path=os.path.join(self._dir, "rids.map"),
            host=s.host,
            port=s.port,
            tls_pem=pem,
            ttl=s.ttl,
            grace=s.grace,
            handshake_timeout=s.handshake_timeout,
            proxy_protocol=s.proxy_protocol,
            max_connections_per_ip=s.max_connections_per_ip,
            max_connections=haproxy_max_connections(),
            stats_socket=self._socket,
        )

    async def _start_haproxy(self, haproxy: str) -> None:
        nodes = [Node(slot.routing_id, NODE_HOST, slot.port) for slot in self.slots]
        front = self._front()
        files = render(nodes, front)
        self._write("rids.map", files.rid_map)
        config = self._write("haproxy.cfg", files.config)
        self.haproxy = await processes.spawn(
            [haproxy, "-db", "-f", config], stderr=asyncio.subprocess.STDOUT
        )
        self._haproxy_log = asyncio.create_task(self._relay_haproxy_output(self.haproxy))

    async def _relay_haproxy_output(self, proc: asyncio.subprocess.Process) -> None:
        """Forward HAProxy's messages to our stderr, prefixed, and notice when it exits."""
        assert proc.stdout is not None
        async for line in proc.stdout:
            text = line.decode(errors="replace").rstrip()
            printable = "".join(c if c.isprintable() else "?" for c in text)
            print(f"haproxy: {printable}", file=sys.stderr, flush=True)
        await proc.wait()
        self.haproxy_died.set()

    async def _wait_healthy(self) -> None:
        timeout = self.settings.start_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.haproxy_died.is_set():
                raise ClusterError(
                    ClusterReason.HAPROXY_FAILED,
                    "HAProxy exited at start: fix the cause in its messages above "
                    "(prefixed 'haproxy:').",
                )
            with contextlib.suppress(OSError, TimeoutError):
                states = await node_states(self._socket)
                if len(states) == len(self.slots) and all(s.healthy for s in states):
                    return
            if loop.time() > deadline:
                raise ClusterError(
                    ClusterReason.NOT_HEALTHY,
                    f"HAProxy did not see every node healthy within {timeout:g} s: check the "
                    "nodes' messages above.",
                )
            await asyncio.sleep(0.1)

    # -- keep running ----------------------------------------------------------------------

    async def _watch(self, slot: NodeSlot) -> None:
        """Restart the node in `slot` whenever it exits, until the cluster stops.

        The delay before a restart doubles while the node keeps dying young, and starts
        over once it has run for `STABLE_AFTER` seconds.
        """
        loop = asyncio.get_running_loop()
        delay = RESTART_DELAY[0]
        while True:
            assert slot.proc is not None
            started = loop.time()
            code = await slot.proc.wait()
            if self._stopping:
                return
            if loop.time() - started >= STABLE_AFTER:
                delay = RESTART_DELAY[0]
            print(
                f"cluster: node {slot.routing_id} (pid {slot.proc.pid}) exited with code "
                f"{code}; restarting it with the same routing ID and port in {delay:g} s",
                file=sys.stderr,
                flush=True,
            )
            await asyncio.sleep(delay)
            delay = min(2 * delay, RESTART_DELAY[1])
            try:
                await self._start_node(slot)
            except ClusterError as exc:
                print(f"cluster: {exc}", file=sys.stderr, flush=True)
                await processes.stop(slot.proc, 2.0)  # one that hung at start
                continue
            slot.restarts += 1
            self._announce_node(slot)

    async def supervise(self, stop: asyncio.Event) -> None:
        """Return when `stop` is set; `ClusterError` when HAProxy dies on its own."""
        stopped = asyncio.ensure_future(stop.wait())
        died = asyncio.ensure_future(self.haproxy_died.wait())
        try:
            await asyncio.wait({stopped, died}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            died.cancel()
        if not stop.is_set():
            code = self.haproxy.returncode if self.haproxy is not None else None
            raise ClusterError(
                ClusterReason.HAPROXY_FAILED,
                f"HAProxy exited on its own (exit code {code}): the cluster stopped; see its "
                "messages above and start the cluster again.",
            )

    # -- stop ------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Drain: HAProxy stops accepting, nodes finish joined tunnels, everything exits."""
        self._stopping = True
        watchers = [slot.watcher for slot in self.slots if slot.watcher is not None]
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        if self.haproxy is not None:
            processes.send(self.haproxy, signal.SIGUSR1)  # soft stop: no new connections
        node_wait = self.settings.grace + self.settings.close_timeout + 5
        procs = [slot.proc for slot in self.slots if slot.proc is not None]
        await asyncio.gather(*(processes.stop(proc, node_wait) for proc in procs))
        if self.haproxy is not None:
            await processes.wait_or_kill(self.haproxy, 5.0)
            if self._haproxy_log is not None:
                await self._haproxy_log
        shutil.rmtree(self._dir, ignore_errors=True)

    def cut_grace(self) -> None:
        """A second stop request: nodes close their remaining tunnels now."""
        for slot in self.slots:
            if slot.proc is not None:
                processes.send(slot.proc, signal.SIGTERM)
