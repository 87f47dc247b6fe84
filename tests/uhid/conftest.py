"""Tests that need a real kernel HID stack (/dev/uhid, /dev/hidraw*): they run inside the VM.

`tests/vm/test_uhid_in_vm.py` boots Debian's kernel with virtme-ng and runs this directory
there; on a kernel without uhid (this sandbox's) the directory is not collected at all
(`tests/conftest.py`), so nothing here is ever skipped silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest_asyncio

from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.bridge.daemon import Bridge
from tests.bridge.presenters import RecordingPresenter
from tests.conftest import ClientFactory
from tests.e2e.phones import verifying_phone
from tests.e2e.test_ceremonies import PhoneRunner
from tunnel_server import ServerConfig, TunnelServer


@pytest_asyncio.fixture
async def tunnel_url() -> AsyncIterator[str]:
    """The tunnel server in-process: under the VM's emulated CPU a new Python process takes
    longer to start than the whole ceremony (the server's code is the same)."""
    async with TunnelServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        yield server.url


#: Bounds for what runs inside the VM: QEMU's emulated CPU on a loaded 1-2 core host makes
#: Python 10-30 times slower than here, so they only stop a hang, never time a step.
CEREMONY_TIMEOUT = 300.0


@dataclass
class RunningBridge:
    bridge: Bridge
    presenter: RecordingPresenter
    phone: PhoneRunner
    hidraw: str


@asynccontextmanager
async def bridge_on_uhid(
    make_client: ClientFactory,
    advertiser: BumbleAdvertiser,
    tunnel_url: str,
    *,
    answer: bool = True,
    ceremony_timeout: float = CEREMONY_TIMEOUT,
) -> AsyncIterator[RunningBridge]:
    """`Bridge.run` on the real /dev/uhid, the software phone answering its QR codes."""
    phone = PhoneRunner(verifying_phone(), advertiser, tunnel_url, timeout=CEREMONY_TIMEOUT)
    presenter = RecordingPresenter(phone if answer else (lambda url: None))
    bridge = Bridge(
        make_client(timeout=ceremony_timeout, on_status=presenter.status),
        presenter,
        ceremony_timeout=ceremony_timeout,
    )
    stop = asyncio.Event()
    plugged: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    running = asyncio.create_task(bridge.run(stop, plugged.set_result))
    try:
        waited: list[asyncio.Future[Any]] = [plugged, running]
        done, _ = await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        if running in done:
            running.result()  # raises why the bridge could not start
        yield RunningBridge(bridge, presenter, phone, plugged.result())
    finally:
        stop.set()
        await asyncio.wait_for(running, CEREMONY_TIMEOUT)
        for task in phone.tasks:
            task.cancel()
        await asyncio.gather(*phone.tasks, return_exceptions=True)
