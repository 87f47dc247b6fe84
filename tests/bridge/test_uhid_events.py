"""uhid events byte for byte against linux/uhid.h's packed layout (offsets from the header)."""

from __future__ import annotations

import errno
import struct

import pytest
from fido2.hid.base import parse_report_descriptor

from hybrid.bridge import uhid_events
from hybrid.bridge.uhid_events import (
    EVENT_SIZE,
    FIDO_REPORT_DESCRIPTOR,
    DeviceInfo,
    EventType,
    Lifecycle,
    Output,
    ReportRequest,
    Unknown,
)
from hybrid.errors import BridgeError, BridgeReason

# struct uhid_event { __u32 type; union { ...; struct uhid_create2_req create2; ... } u; }
# uhid_create2_req: name[128] phys[64] uniq[64] rd_size u16 bus u16 vendor product version
# country u32, rd_data[4096] -> 4372 bytes, the largest member; the union also holds a u64
# (uhid_start_req), so it is 4376; the packed event is 4380 (gcc's sizeof says the same).
_NAME, _PHYS, _UNIQ, _RD_SIZE = 4, 4 + 128, 4 + 192, 4 + 256
_RD_DATA = _RD_SIZE + 2 + 2 + 16


def test_the_event_is_the_size_of_struct_uhid_event() -> None:
    assert EVENT_SIZE == 4380
    for event in (
        uhid_events.create2(DeviceInfo("x", 1, 2)),
        uhid_events.input2(b"\x01" * 64),
        uhid_events.destroy(),
    ):
        assert len(event) == EVENT_SIZE


def test_create2_puts_each_field_where_the_kernel_reads_it() -> None:
    info = DeviceInfo("fido key", 0x1209, 0x0001, 0x0100, "phys-x", "uniq-y", country=7)
    event = uhid_events.create2(info)
    assert struct.unpack_from("<I", event) == (EventType.CREATE2,) == (11,)
    assert event[_NAME : _NAME + 9] == b"fido key\0"
    assert event[_PHYS : _PHYS + 7] == b"phys-x\0"
    assert event[_UNIQ : _UNIQ + 7] == b"uniq-y\0"
    size, bus, vendor, product, version, country = struct.unpack_from("<HHIIII", event, _RD_SIZE)
    assert (size, bus, vendor, product, version, country) == (
        len(FIDO_REPORT_DESCRIPTOR),
        0x03,
        0x1209,
        0x0001,
        0x0100,
        7,
    )
    assert event[_RD_DATA : _RD_DATA + size] == FIDO_REPORT_DESCRIPTOR


def test_names_are_cut_to_their_fields_and_stay_nul_terminated() -> None:
    event = uhid_events.create2(DeviceInfo("é" * 200, 1, 2, uniq="u" * 100))
    name = event[_NAME : _NAME + 128]
    assert name[-1] == 0 and name.rstrip(b"\0").decode() == "é" * 63
    assert event[_UNIQ : _UNIQ + 64] == b"u" * 63 + b"\0"


def test_the_report_descriptor_is_a_fido_device_to_python_fido2() -> None:
    max_in, max_out = parse_report_descriptor(FIDO_REPORT_DESCRIPTOR)
    assert (max_in, max_out) == (64, 64)
    assert FIDO_REPORT_DESCRIPTOR[:3] == bytes([0x06, 0xD0, 0xF1])  # usage page 0xF1D0


def test_input2_and_report_replies() -> None:
    event = uhid_events.input2(b"\xaa" * 64)
    assert struct.unpack_from("<IH", event) == (EventType.INPUT2, 64)
    assert event[6:70] == b"\xaa" * 64
    get = ReportRequest(EventType.GET_REPORT, 42, 3)
    assert struct.unpack_from("<IIH", uhid_events.report_reply(get, errno.EIO)) == (
        EventType.GET_REPORT_REPLY,
        42,
        errno.EIO,
    )
    set_ = ReportRequest(EventType.SET_REPORT, 43, 0)
    assert struct.unpack_from("<IIH", uhid_events.report_reply(set_, errno.EIO)) == (
        EventType.SET_REPORT_REPLY,
        43,
        errno.EIO,
    )
    with pytest.raises(ValueError):
        uhid_events.input2(bytes(4097))
    with pytest.raises(ValueError):
        uhid_events.create2(DeviceInfo("x", 1, 2, report_descriptor=b""))


def test_parse_reads_what_the_kernel_sends() -> None:
    output = bytearray(EVENT_SIZE)
    struct.pack_into("<I", output, 0, EventType.OUTPUT)
    output[4:69] = b"\0" + b"\x11" * 64
    struct.pack_into("<HB", output, 4 + 4096, 65, 1)  # size, rtype UHID_OUTPUT_REPORT
    assert uhid_events.parse(bytes(output)) == Output(b"\0" + b"\x11" * 64, 1)

    for kind in (EventType.START, EventType.STOP, EventType.OPEN, EventType.CLOSE):
        assert uhid_events.parse(struct.pack("<I", kind) + bytes(8)) == Lifecycle(kind)
    request = struct.pack("<IIBB", EventType.GET_REPORT, 9, 2, 0)
    assert uhid_events.parse(request) == ReportRequest(EventType.GET_REPORT, 9, 2)
    assert uhid_events.parse(struct.pack("<I", 99)) == Unknown(99)


@pytest.mark.parametrize("raw", [b"", b"\x06\x00", struct.pack("<I", EventType.OUTPUT) + bytes(9)])
def test_a_cut_event_is_a_bridge_error_not_a_crash(raw: bytes) -> None:
    with pytest.raises(BridgeError) as failed:
        uhid_events.parse(raw)
    assert failed.value.reason == BridgeReason.UHID_FAILED
