"""HAProxy's runtime API (its stats socket): which nodes HAProxy currently sees as healthy."""

from __future__ import annotations

import asyncio
import csv
from dataclasses import dataclass

from .haproxy import NEW_BACKEND


@dataclass(frozen=True)
class ServerState:
    name: str
    #: HAProxy's status column: UP, DOWN, "UP 1/2", MAINT, NOLB, ...
    status: str
    #: Result of the last health check, e.g. L7OK, L4CON, L7STS, or "" before the first.
    check: str

    @property
    def healthy(self) -> bool:
        return self.status == "UP" and self.check.startswith("L7OK")


async def command(socket_path: str, line: str, timeout: float = 2.0) -> str:
    """Send one runtime-API command and return HAProxy's whole answer."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_unix_connection(socket_path)
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode(errors="replace")
        finally:
            writer.close()
            await writer.wait_closed()


def parse_stat(text: str, backend: str = NEW_BACKEND) -> list[ServerState]:
    """The servers of `backend` in a `show stat` CSV answer."""
    lines = text.lstrip("# ").splitlines()
    states = []
    for row in csv.DictReader(lines):
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
            states.append(
                ServerState(row["svname"], row.get("status", ""), row.get("check_status", ""))
            )
    return states


async def node_states(socket_path: str) -> list[ServerState]:
    return parse_stat(await command(socket_path, "show stat"))
