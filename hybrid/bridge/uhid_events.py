"""The kernel's uhid events (linux/uhid.h) as bytes: what `/dev/uhid` reads and writes.

Pure encoding and decoding, no file: `uhid.UhidDevice` moves these bytes. Every event is one
packed `struct uhid_event` (a u32 type, then the union of requests), native byte order — x86
and arm64 are little-endian, which is all Debian's kernel packages for this run on.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from hybrid.errors import BridgeError, BridgeReason

#: UHID_DATA_MAX and HID_MAX_DESCRIPTOR_SIZE.
DATA_MAX: Final = 4096
#: sizeof(struct uhid_create2_req), the largest member of the union.
_CREATE2_SIZE: Final = 128 + 64 + 64 + 2 + 2 + 4 * 4 + DATA_MAX
#: The union is not packed and holds a u64 (uhid_start_req): its size rounds up to 8 bytes.
_UNION_SIZE: Final = (_CREATE2_SIZE + 7) // 8 * 8
#: sizeof(struct uhid_event) (4380, checked with a C compiler against linux/uhid.h): every
#: read returns one, every write sends one.
EVENT_SIZE: Final = 4 + _UNION_SIZE
BUS_USB: Final = 0x03

#: The FIDO HID report descriptor (CTAP 2.1 §11.2.8.1): usage page 0xF1D0, usage CTAPHID,
#: one 64-byte input report and one 64-byte output report, no report IDs.
FIDO_REPORT_DESCRIPTOR: Final = bytes.fromhex(
    "06d0f1"  # Usage Page (FIDO Alliance)
    "0901"  # Usage (CTAPHID)
    "a101"  # Collection (Application)
    "0920"  # Usage (Input Report Data)
    "1500"
    "26ff00"
    "7508"
    "9540"  # Logical 0..255, 8 bits, 64 of them
    "8102"  # Input (Data, Variable, Absolute)
    "0921"  # Usage (Output Report Data)
    "1500"
    "26ff00"
    "7508"
    "9540"
    "9102"  # Output (Data, Variable, Absolute)
    "c0"  # End Collection
)


class EventType(enum.IntEnum):
    """`enum uhid_event_type` (the legacy members are never sent by a current kernel to us)."""

    DESTROY = 1
    START = 2
    STOP = 3
    OPEN = 4
    CLOSE = 5
    OUTPUT = 6
    GET_REPORT = 9
    GET_REPORT_REPLY = 10
    CREATE2 = 11
    INPUT2 = 12
    SET_REPORT = 13
    SET_REPORT_REPLY = 14


class ReportType(enum.IntEnum):
    """`enum uhid_report_type`."""

    FEATURE = 0
    OUTPUT = 1
    INPUT = 2


@dataclass(frozen=True)
class DeviceInfo:
    """What UHID_CREATE2 tells the kernel about the device; strings are cut to their fields."""

    name: str
    vendor: int
    product: int
    version: int = 0
    phys: str = ""
    uniq: str = ""
    bus: int = BUS_USB
    country: int = 0
    report_descriptor: bytes = FIDO_REPORT_DESCRIPTOR


@dataclass(frozen=True)
class Lifecycle:
    """START, STOP, OPEN or CLOSE: the kernel's HID core or a reader came or went."""

    type: EventType


@dataclass(frozen=True)
class Output:
    """UHID_OUTPUT: a program wrote an output report (to /dev/hidraw)."""

    data: bytes
    report_type: int


@dataclass(frozen=True)
class ReportRequest:
    """UHID_GET_REPORT or UHID_SET_REPORT: the kernel waits for a reply carrying `id`."""

    type: EventType
    id: int
    report_number: int


@dataclass(frozen=True)
class Unknown:
    """An event type this module does not know; ignored by the driver."""

    type: int


UhidEvent = Lifecycle | Output | ReportRequest | Unknown


def _event(kind: EventType, body: bytes) -> bytes:
    return struct.pack("<I", kind) + body.ljust(_UNION_SIZE, b"\0")


def _field(text: str, size: int) -> bytes:
    # NUL-terminated C string: at most size - 1 bytes of UTF-8, never a cut character
    raw = text.encode()[: size - 1]
    return raw.decode(errors="ignore").encode().ljust(size, b"\0")


def create2(info: DeviceInfo) -> bytes:
    """UHID_CREATE2: make the device (the kernel then sends START, and OPEN once read)."""
    descriptor = info.report_descriptor
    if not descriptor or len(descriptor) > DATA_MAX:
        raise ValueError(f"a report descriptor has 1 to {DATA_MAX} bytes, not {len(descriptor)}")
    body = (
        _field(info.name, 128)
        + _field(info.phys, 64)
        + _field(info.uniq, 64)
        + struct.pack(
            "<HHIIII",
            len(descriptor),
            info.bus,
            info.vendor,
            info.product,
            info.version,
            info.country,
        )
        + descriptor
    )
    return _event(EventType.CREATE2, body)


def input2(report: bytes) -> bytes:
    """UHID_INPUT2: one input report for every reader of the device."""
    if len(report) > DATA_MAX:
        raise ValueError(f"an input report has at most {DATA_MAX} bytes, not {len(report)}")
    return _event(EventType.INPUT2, struct.pack("<H", len(report)) + report)


def destroy() -> bytes:
    """UHID_DESTROY: remove the device (closing /dev/uhid does the same)."""
    return _event(EventType.DESTROY, b"")


def report_reply(request: ReportRequest, error: int) -> bytes:
    """Refuse a GET_REPORT/SET_REPORT with errno `error` (the FIDO device has no such reports)."""
    if request.type == EventType.GET_REPORT:
        return _event(EventType.GET_REPORT_REPLY, struct.pack("<IHH", request.id, error, 0))
    return _event(EventType.SET_REPORT_REPLY, struct.pack("<IH", request.id, error))


def parse(event: bytes) -> UhidEvent:
    """Decode one event read from /dev/uhid; `BridgeError` if it is too short for its type."""
    try:
        (kind,) = struct.unpack_from("<I", event)
        if kind in (EventType.START, EventType.STOP, EventType.OPEN, EventType.CLOSE):
            return Lifecycle(EventType(kind))
        if kind == EventType.OUTPUT:
            (size, report_type) = struct.unpack_from("<HB", event, 4 + DATA_MAX)
            return Output(event[4 : 4 + min(size, DATA_MAX)], report_type)
        if kind in (EventType.GET_REPORT, EventType.SET_REPORT):
            request_id, number = struct.unpack_from("<IB", event, 4)
            return ReportRequest(EventType(kind), request_id, number)
    except struct.error as exc:
        detail = f"a uhid event of {len(event)} bytes is cut short"
        raise BridgeError(BridgeReason.UHID_FAILED, detail) from exc
    return Unknown(kind)
