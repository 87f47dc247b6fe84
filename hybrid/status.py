"""Progress reports a desktop ceremony gives through `on_status`."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Stage(enum.Enum):
    """Where a ceremony is, in order."""

    CHECKING_BLUETOOTH = "checking_bluetooth"
    SHOWING_QR = "showing_qr"
    WAITING_FOR_PHONE = "waiting_for_phone"
    PHONE_NOT_SEEN = "phone_not_seen"
    PHONE_FOUND = "phone_found"
    CONNECTING = "connecting"
    WAITING_FOR_USER = "waiting_for_user"
    LINKED = "linked"
    DONE = "done"


@dataclass(frozen=True)
class Status:
    """One progress report: a stage and a sentence for people."""

    stage: Stage
    message: str

    def __str__(self) -> str:
        return self.message
