"""`Bridge`: the virtual security key, running — uhid device, CTAPHID, the phone, the presenter.

It is the desktop role for the phone (`HybridClient.session`) and a USB key for programs. One
ceremony runs at a time; its QR code is shown by the `Presenter`, its failures reach the
program as CTAP status codes and the user as the presenter's last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

from hybrid.authenticator.security_key_hid import PRODUCT_ID, VENDOR_ID
from hybrid.desktop.client import HybridClient
from hybrid.desktop.session import HybridSession
from hybrid.errors import HybridError
from hybrid.transport import time_limit

from .key import BridgeKey
from .presenter import Presenter
from .request import BridgeRequest
from .responder import PhoneResponder
from .uhid import UHID_PATH, UhidDevice
from .uhid_events import DeviceInfo

log = logging.getLogger(__name__)

PRODUCT_NAME: Final = "fido-hybrid phone bridge"
#: How long one phone ceremony may take, QR code to answer.
CEREMONY_TIMEOUT: Final = 120.0
_SYSFS_HID: Final = Path("/sys/bus/hid/devices")


def device_info(uniq: str | None = None) -> DeviceInfo:
    """The virtual key as the kernel and programs see it; `uniq` tells bridges apart."""
    return DeviceInfo(
        name=PRODUCT_NAME,
        vendor=VENDOR_ID,
        product=PRODUCT_ID,
        version=0x0100,
        phys="fido-hybrid",
        uniq=uniq or secrets.token_hex(8),
    )


def find_hidraw(uniq: str, sysfs: Path = _SYSFS_HID) -> str | None:
    """/dev/hidrawN of the HID device whose HID_UNIQ is `uniq`, once the kernel made it."""
    try:
        devices = list(sysfs.iterdir())
    except OSError:
        return None
    for device in devices:
        with contextlib.suppress(OSError):
            if f"HID_UNIQ={uniq}" in (device / "uevent").read_text(errors="replace").split("\n"):
                for node in (device / "hidraw").iterdir():
                    return f"/dev/{node.name}"
    return None


class Bridge:
    """Runs the virtual key until `stop` is set; `ready(hidraw)` once programs can see it."""

    def __init__(
        self,
        client: HybridClient,
        presenter: Presenter,
        *,
        uhid_path: str = UHID_PATH,
        ceremony_timeout: float = CEREMONY_TIMEOUT,
        info: DeviceInfo | None = None,
    ) -> None:
        self.client = client
        self.presenter = presenter
        self.uhid_path = uhid_path
        self.ceremony_timeout = ceremony_timeout
        self.info = info or device_info()
        self.responder = PhoneResponder(self._open_session)
        self.responder.on_notice = presenter.notice
        self._key: BridgeKey | None = None

    def attach(self, send_report: Callable[[bytes], None]) -> BridgeKey:
        """The CTAPHID side over `send_report` (uhid's input reports, or a test's pipe)."""
        self._key = BridgeKey(self.responder, send_report)
        return self._key

    def cancel(self) -> None:
        """Cancel the running ceremony (the window's Cancel button); call on the loop."""
        if self._key is not None:
            self._key.cancel()

    async def run(self, stop: asyncio.Event, ready: Callable[[str], None] | None = None) -> None:
        """Create the device, answer programs until `stop` is set, then destroy the device.

        Raises `BridgeError` when /dev/uhid cannot be used or fails under the bridge.
        """
        device = UhidDevice(self.info, self._receive, self.uhid_path, self._nobody_listens)
        with contextlib.closing(device):
            device.open()
            assert device.failed is not None
            key = self.attach(device.send_input)
            serving = asyncio.create_task(key.serve())
            stopping = asyncio.create_task(stop.wait())
            try:
                if ready is not None:
                    ready(await self._wait_for_hidraw())
                waited: list[asyncio.Future[Any]] = [serving, stopping, device.failed]
                await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            finally:
                key.close()
                for task in (serving, stopping):
                    task.cancel()
                await asyncio.gather(serving, stopping, return_exceptions=True)
                self._key = None
            if device.failed.done():
                raise device.failed.result()
            if serving.done() and not serving.cancelled() and (error := serving.exception()):
                raise error

    def _nobody_listens(self) -> None:
        """Every program closed the device: nobody will read an answer, so stop asking."""
        if self._key is not None and self._key.busy:
            log.info("the program went away mid-request: the ceremony is cancelled")
            self._key.forget()

    def _receive(self, data: bytes) -> None:
        if self._key is not None:
            self._key.receive(data)

    async def _wait_for_hidraw(self) -> str:
        """The hidraw node's path once udev/devtmpfs shows it ("" if the kernel has no sysfs)."""
        if not _SYSFS_HID.is_dir():
            return ""
        for _ in range(200):  # the kernel starts the device within milliseconds
            node = find_hidraw(self.info.uniq)
            if node is not None and os.path.exists(node):
                return node
            await asyncio.sleep(0.025)
        return ""

    @contextlib.asynccontextmanager
    async def _open_session(self, request: BridgeRequest) -> AsyncIterator[HybridSession]:
        self.presenter.request_started(request, self.cancel)
        outcome = "Cancelled."
        try:
            async with (
                time_limit(self.ceremony_timeout, "phone", "scan the QR code with your phone"),
                self.client.session(self.presenter.show_qr, request.kind) as session,
            ):
                yield session
            outcome = "Done: the phone answered."
        except HybridError as error:
            outcome = f"Failed: {error}"
            raise
        finally:
            self.presenter.request_ended(outcome)
