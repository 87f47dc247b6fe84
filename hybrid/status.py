"""Progress reports a desktop ceremony gives through `on_status`."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hybrid.errors import HybridError


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
    # Security keys (USB), offered in the same ceremony as the phone:
    PHONE_UNAVAILABLE = "phone_unavailable"  # Bluetooth cannot be used: keys only
    INSERT_KEY = "insert_key"  # no key plugged in yet
    TOUCH_KEY = "touch_key"  # a key blinks: touch it (or scan the QR code)
    ENTER_PIN = "enter_pin"  # the touched key needs its PIN
    KEY_SKIPPED = "key_skipped"  # a key was left out: no passkey, needs a PIN, pulled out, ...


@dataclass(frozen=True)
class Status:
    """One progress report: a stage and a sentence for people.

    `error` carries the data when a path was left out (`BluetoothUnavailable` with its reason
    for the phone, `NoCredentials` or `SecurityKeyError` for a key).
    """

    stage: Stage
    message: str
    error: HybridError | None = None

    def __str__(self) -> str:
        return self.message
