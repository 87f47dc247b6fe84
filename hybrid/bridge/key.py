"""`BridgeKey`: the virtual security key's CTAPHID side, in front of the phone.

Output reports from programs go through the sans-I/O `CtapHidKey`; each complete CTAP2
request is answered by the `PhoneResponder` in a task, one at a time (a second program gets
CTAPHID_ERROR CHANNEL_BUSY, as from a real key). While it runs, a KEEPALIVE goes out every
`KEEPALIVE_INTERVAL` so no program gives up on the key, and CTAPHID_CANCEL (or the window's
Cancel button) ends the ceremony at once with CTAP2_ERR_KEEPALIVE_CANCEL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from hybrid.ctap import CtapStatus
from hybrid.ctaphid import (
    REPORT_SIZE,
    CancelRequested,
    CborRequest,
    CtapHidKey,
    RequestAbandoned,
)

from .responder import PhoneResponder

log = logging.getLogger(__name__)

#: Below the 100 ms programs expect at most between two packets of a busy key.
KEEPALIVE_INTERVAL: Final = 0.08

SendReport = Callable[[bytes], None]


def output_report(data: bytes) -> bytes:
    """A 64-byte CTAPHID packet from what a program wrote to hidraw.

    hidraw passes the report-ID byte through to uhid: with no report IDs in the descriptor a
    write is 65 bytes starting with 0 (python-fido2, libfido2, authenticator-rs all do this).
    """
    if len(data) == REPORT_SIZE + 1 and data[0] == 0:
        return data[1:]
    return data


class BridgeKey:
    """CTAPHID framing, keepalives and cancel around one `PhoneResponder`."""

    def __init__(
        self,
        responder: PhoneResponder,
        send_report: SendReport,
        *,
        clock: Callable[[], float] = time.monotonic,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
    ) -> None:
        self.responder = responder
        self._send_report = send_report
        self._clock = clock
        self._keepalive_interval = keepalive_interval
        self._hid = CtapHidKey()
        self._running: asyncio.Task[bytes] | None = None
        self._abandoned = False

    @property
    def busy(self) -> bool:
        """Whether a request is being answered now."""
        return self._running is not None

    def receive(self, data: bytes) -> None:
        """One output report a program wrote."""
        for event in self._hid.receive_report(output_report(data), self._clock()):
            if isinstance(event, CborRequest):
                self._start(event)
            elif isinstance(event, CancelRequested):
                self.cancel()
            elif isinstance(event, RequestAbandoned):
                self._abandoned = True
                self.cancel()
        self._flush()

    def cancel(self) -> None:
        """End the running request: the program gets CTAP2_ERR_KEEPALIVE_CANCEL."""
        if self._running is not None:
            self._running.cancel()

    async def serve(self) -> None:
        """Send keepalives and time out half-sent messages until cancelled."""
        while True:
            await asyncio.sleep(self._keepalive_interval)
            self._hid.expire(self._clock())
            if self._running is not None:
                self._hid.keepalive(self.responder.keepalive_status)
            self._flush()

    def close(self) -> None:
        """Stop answering; a running ceremony is cancelled and its answer dropped."""
        self._abandoned = True
        self.cancel()

    def forget(self) -> None:
        """Every program closed the device: nobody is left to read an answer, so the running
        ceremony is cancelled, its answer dropped and every channel forgotten (a stale reply
        would reach the next program that opens the device)."""
        self._hid.reset()
        self.close()

    def _start(self, request: CborRequest) -> None:
        self._abandoned = False
        task = asyncio.get_running_loop().create_task(self.responder.respond(request.request))
        self._running = task
        task.add_done_callback(lambda done: self._finished(request.cid, done))

    def _finished(self, cid: int, task: asyncio.Task[bytes]) -> None:
        if task is not self._running:
            return
        self._running = None
        if task.cancelled():
            # After a re-INIT the machine drops whatever is answered; answering frees the key.
            reply = b"" if self._abandoned else bytes([CtapStatus.KEEPALIVE_CANCEL])
        elif (error := task.exception()) is not None:
            log.error("the bridge failed to answer: %r", error)
            reply = bytes([CtapStatus.OTHER])
        else:
            reply = task.result()
        self._hid.answer(cid, reply)
        self._flush()

    def _flush(self) -> None:
        for report in self._hid.data_to_send():
            self._send_report(report)
