"""CTAPHID, the USB HID framing of CTAP (CTAP 2.1 §11.2), sans I/O.

Packets, channels, keepalives and cancel as one pure state machine (`CtapHidKey`): reports in,
events out, reports to send. The software security key drives it from threads, the uhid bridge
from a kernel device; neither re-implements a channel rule.
"""

from hybrid.ctaphid.framing import (
    BROADCAST_CID,
    CAPABILITIES,
    CTAPHID_PROTOCOL_VERSION,
    DEVICE_VERSION,
    KEEPALIVE_INTERVAL,
    MAX_MESSAGE_SIZE,
    MESSAGE_TIMEOUT,
    REPORT_SIZE,
    HidError,
    KeepaliveStatus,
    frame_message,
)
from hybrid.ctaphid.key import (
    CancelRequested,
    CborRequest,
    CtapHidKey,
    HidEvent,
    RequestAbandoned,
    Winked,
)

__all__ = [
    "BROADCAST_CID",
    "CAPABILITIES",
    "CTAPHID_PROTOCOL_VERSION",
    "DEVICE_VERSION",
    "KEEPALIVE_INTERVAL",
    "MAX_MESSAGE_SIZE",
    "MESSAGE_TIMEOUT",
    "REPORT_SIZE",
    "CancelRequested",
    "CborRequest",
    "CtapHidKey",
    "HidError",
    "HidEvent",
    "KeepaliveStatus",
    "RequestAbandoned",
    "Winked",
    "frame_message",
]
