"""Run the tunnel server as a real subprocess, for end-to-end tests of the phone and desktop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hybrid.errors import TunnelError
from hybrid.protocol.constants import CABLE_WEBSOCKET_PROTOCOL, CONNECT_PATH, NEW_TUNNEL_PATH

from .server import TunnelServer

_LISTENING = re.compile(r"listening on (wss?://\S+)")


class ServerStartError(TunnelError):
    """The tunnel-server subprocess did not come up; the message carries its stderr."""


def new_url(base_url: str, tunnel_id: str) -> str:
    """The phone's URL for a tunnel ID given in hex."""
    return f"{base_url}{NEW_TUNNEL_PATH}{tunnel_id}"


def connect_url(base_url: str, routing_id: str, tunnel_id: str) -> str:
    """The desktop's URL for a routing ID and tunnel ID given in hex."""
    return f"{base_url}{CONNECT_PATH}{routing_id}/{tunnel_id}"


def cable_connect(url: str, **kwargs: Any) -> connect:
    """A websockets client opened the way phones and desktops do: fido.cable, no compression."""
    kwargs.setdefault("subprotocols", [CABLE_WEBSOCKET_PROTOCOL])
    kwargs.setdefault("compression", None)
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 2)
    return connect(url, **kwargs)


async def closed_by_server(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Read `ws` until the server closes it; return the close code and reason it sent."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        if exc.rcvd is None:
            raise AssertionError("the connection ended without a close frame") from exc
        return exc.rcvd.code, exc.rcvd.reason


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes


UPGRADE_HEADERS: Mapping[str, str] = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Protocol": "fido.cable",
}


async def http_request(
    base_url: str,
    target: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] = UPGRADE_HEADERS,
    timeout: float = 5.0,
    prefix: bytes = b"",
) -> HttpReply:
    """Send one raw HTTP/1.1 request with `target` exactly as given (no URL normalising).

    Meant for plain-ws test servers; returns the status line, headers and whatever body
    arrived before the server closed or `timeout` passed. Status 0 means no response at all.
    `prefix` goes first on the wire (a PROXY protocol header, say).
    """
    url = urlsplit(base_url)
    assert url.hostname is not None and url.port is not None
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(prefix)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {url.netloc}"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(timeout):
                while b"\r\n\r\n" not in data or not _complete(data):
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    data += chunk
        return _parse_reply(data)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 101"):
        return True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def _parse_reply(data: bytes) -> HttpReply:
    if not data:
        return HttpReply(0, {}, b"")
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpReply(int(status_line.split(" ")[1]), headers, body)


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, what: str = ""
) -> None:
    """Poll `predicate` every few milliseconds; fail with `what` if it stays false."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running_server_process(
    *extra_args: str, start_timeout: float = 10.0, stop_timeout: float = 15.0
) -> AsyncIterator[str]:
    """Start `python -m tunnel_server --host 127.0.0.1 --port 0 *extra_args`; yield its URL.

    On exit the process gets SIGTERM (a graceful stop) and is killed if it is still there
    after `stop_timeout` seconds.
    """
    with tempfile.TemporaryFile() as stderr:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tunnel_server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *extra_args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
        try:
            url = await _read_url(proc, stderr, start_timeout)
            yield url
        finally:
            await _stop(proc, stop_timeout)


async def _read_url(proc: asyncio.subprocess.Process, stderr: IO[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    line = b""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            line = await proc.stdout.readline()
    match = _LISTENING.match(line.decode(errors="replace").strip())
    if match is not None:
        return match[1]
    await _stop(proc, 2.0)
    errors = _tail(stderr)
    raise ServerStartError(
        f"the tunnel server did not print 'listening on …' within {timeout:g} s "
        f"(exit code {proc.returncode}); fix the cause shown in its stderr:\n{errors}"
    )


def _tail(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    return stderr.read()[-4000:].decode(errors="replace")


async def _stop(proc: asyncio.subprocess.Process, timeout: float) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def has_metric(server: TunnelServer, line: str) -> bool:
    """Whether `server`'s /metrics text has `line`, e.g. 'cable_rejections_total{…} 1.0'."""
    return line in server.hub.metrics.render().decode()


async def wait_until_idle(server: TunnelServer, timeout: float = 5.0) -> None:
    """Wait until `server` holds nothing: no tunnel, connection, per-address count or task.

    The check that a test left no tunnel behind, whatever way its tunnels ended.
    """
    hub = server.hub
    await wait_until(
        lambda: not (hub.tunnels or hub.connections or hub.per_ip or hub.tasks),
        timeout,
        f"an idle server (tunnels={len(hub.tunnels)}, connections={len(hub.connections)}, "
        f"addresses={len(hub.per_ip)}, tasks={len(hub.tasks)})",
    )
