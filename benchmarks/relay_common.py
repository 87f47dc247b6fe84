"""What the relay benchmarks share: cheap raw WebSocket clients and the burst / life-cycle work.

`tunnel_relay.py` (one server against the floor) and `cluster.py` (HAProxy in front of nodes)
drive the same work so their figures compare; only how they reach a server and what CPU they
count differ. Clients spread over source addresses 127.0.0.2-41 so the per-IP limit is not
what is measured.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound="Client")

CLK_TCK = os.sysconf("SC_CLK_TCK")
SOURCES = [f"127.0.0.{i}" for i in range(2, 42)]
BURST = 64
MESSAGE = bytes(range(256))


def run(main: Coroutine[Any, Any, T], use_uvloop: bool) -> T:
    factory = None
    if use_uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def process_cpu(pid: int) -> float:
    """CPU-seconds (utime + stime) a process has used so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


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


async def connect(port: int, path: str, number: int, client: Callable[[bytes], C]) -> C:
    """An upgraded client on `path`, from the `number`th source address (round robin)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: fido.cable\r\n\r\n"
    ).encode()
    source = SOURCES[number % len(SOURCES)]
    _, opened = await asyncio.get_running_loop().create_connection(
        lambda: client(request), "127.0.0.1", port, local_addr=(source, 0)
    )
    await opened.opened
    return opened


# -- the work: open tunnels, burst both ways, whole life cycles ----------------------------

Pair = tuple[Client, Client]
PairOpener = Callable[[], Awaitable[Pair]]


async def gather_limited(jobs: Iterator[Awaitable[object]], width: int) -> None:
    """Run awaitables with at most `width` in flight (to stay under the accept backlog)."""

    async def worker() -> None:
        for job in jobs:
            await job

    await asyncio.gather(*(worker() for _ in range(width)))


async def open_pairs(pair: PairOpener, count: int, width: int) -> list[Pair]:
    """`count` joined tunnels (phone, desktop), opened `width` at a time."""
    pairs: list[Pair] = []

    async def one() -> None:
        pairs.append(await pair())

    await gather_limited((one() for _ in range(count)), width)
    return pairs


async def bursts(pairs: list[Pair]) -> None:
    """Every tunnel sends BURST messages each way at once; returns when all have arrived."""
    for phone, desktop in pairs:
        phone.send(BURST_FRAMES)
        desktop.send(BURST_FRAMES)
    for phone, desktop in pairs:
        await phone.messages(BURST)
        await desktop.messages(BURST)


async def close_pairs(pairs: list[Pair]) -> None:
    """The desktops close; returns once every phone's connection is gone too."""
    for _, desktop in pairs:
        desktop.close()
    for phone, _ in pairs:
        await phone.lost


async def life_cycles(pair: PairOpener, count: int, width: int) -> None:
    """`count` whole tunnel life cycles, `width` at a time: new, connect, one message each
    way, close."""

    async def one() -> None:
        phone, desktop = await pair()
        desktop.send(ONE_FRAME)
        await phone.messages(1)
        phone.send(ONE_FRAME)
        await desktop.messages(1)
        desktop.close()
        await desktop.lost
        await phone.lost

    await gather_limited((one() for _ in range(count)), width)
