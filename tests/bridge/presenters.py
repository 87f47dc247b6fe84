"""A presenter for tests: the phone answers each QR code the bridge shows; the rest is recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from hybrid.bridge.request import BridgeRequest
from hybrid.status import Status


@dataclass
class RecordingPresenter:
    """The bridge's presenter for tests: hands each QR code to `on_qr`, records the rest."""

    on_qr: Callable[[str], None]
    requests: list[BridgeRequest] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    qr_shown: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def request_started(self, request: BridgeRequest, cancel: Callable[[], None]) -> None:
        self.requests.append(request)

    def show_qr(self, url: str) -> None:
        self.qr_shown.set()
        self.on_qr(url)

    def status(self, status: Status) -> None:
        self.statuses.append(status)

    def request_ended(self, outcome: str) -> None:
        self.outcomes.append(outcome)
        self.ended.set()

    def notice(self, text: str) -> None:
        self.notices.append(text)

    def close(self) -> None:
        pass
