"""Run inside the VM by `test_vm_uhid.py`: a FIDO uhid device, seen from both ends.

Creates a device with the FIDO report descriptor on /dev/uhid, then checks what a FIDO client
sees (python-fido2's hidraw backend) and how bytes cross in each direction. Prints one JSON
object on stdout; the test on the host asserts on it. Deliberately self-contained: the real
driver is `hybrid.bridge.uhid`, this only proves the kernel stack the driver will stand on.
"""

from __future__ import annotations

import glob
import json
import os
import select
import struct
import time
from typing import Any

# linux/uhid.h: struct uhid_event is packed, a u32 type then a union whose largest member
# (uhid_create2_req: 128 + 64 + 64 + 2 + 2 + 4 * 4 + 4096 bytes) makes it 4380 bytes long.
UHID_EVENT_SIZE = 4380
UHID_DESTROY = 1
UHID_START = 2
UHID_OPEN = 4
UHID_OUTPUT = 6
UHID_CREATE2 = 11
UHID_INPUT2 = 12
UHID_DATA_MAX = 4096
BUS_USB = 0x03

# FIDO usage page 0xF1D0, usage 0x01 (CTAPHID), 64-byte input and output reports, no report IDs.
FIDO_REPORT_DESCRIPTOR = bytes.fromhex(
    "06d0f1"  # Usage Page (FIDO Alliance)
    "0901"  # Usage (CTAPHID)
    "a101"  # Collection (Application)
    "0920"  # Usage (Input Report Data)
    "1500"  # Logical Minimum (0)
    "26ff00"  # Logical Maximum (255)
    "7508"  # Report Size (8)
    "9540"  # Report Count (64)
    "8102"  # Input (Data, Var, Abs)
    "0921"  # Usage (Output Report Data)
    "1500"  # Logical Minimum (0)
    "26ff00"  # Logical Maximum (255)
    "7508"  # Report Size (8)
    "9540"  # Report Count (64)
    "9102"  # Output (Data, Var, Abs)
    "c0"  # End Collection
)


def event(kind: int, payload: bytes) -> bytes:
    return struct.pack("<I", kind) + payload.ljust(UHID_EVENT_SIZE - 4, b"\0")


def create2(name: bytes, vendor: int, product: int) -> bytes:
    payload = struct.pack(
        "<128s64s64sHHIIII",
        name,
        b"fido-hybrid-vm-test",
        b"",
        len(FIDO_REPORT_DESCRIPTOR),
        BUS_USB,
        vendor,
        product,
        0,
        0,
    )
    return event(UHID_CREATE2, payload + FIDO_REPORT_DESCRIPTOR)


def read_event(fd: int, wanted: int, timeout: float = 10.0) -> bytes:
    """The payload of the next event of type `wanted`, skipping others (OPEN, CLOSE ...)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            break
        raw = os.read(fd, UHID_EVENT_SIZE)
        (kind,) = struct.unpack_from("<I", raw)
        if kind == wanted:
            return raw[4:]
    raise TimeoutError(f"no uhid event {wanted} within {timeout} s")


def wait_for_hidraw(before: set[str], timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = set(glob.glob("/dev/hidraw*")) - before
        if new:
            return sorted(new)[0]
        time.sleep(0.05)
    raise TimeoutError("no /dev/hidraw* node appeared")


def main() -> None:
    from fido2.hid import list_descriptors

    report: dict[str, Any] = {"uhid_event_size": UHID_EVENT_SIZE}
    before = set(glob.glob("/dev/hidraw*"))
    uhid = os.open("/dev/uhid", os.O_RDWR | os.O_CLOEXEC)
    report["create_written"] = os.write(uhid, create2(b"fido-hybrid VM key", 0x1234, 0x5678))
    read_event(uhid, UHID_START)
    hidraw = wait_for_hidraw(before)
    report["hidraw"] = hidraw
    report["hidraw_is_char_device"] = os.path.exists(hidraw) and not os.path.isfile(hidraw)

    listed = [d for d in list_descriptors() if d.path == hidraw]  # type: ignore[no-untyped-call]
    report["fido2_listed"] = [
        {
            "path": d.path,
            "vid": d.vid,
            "pid": d.pid,
            "report_size_in": d.report_size_in,
            "report_size_out": d.report_size_out,
            "product_name": d.product_name,
        }
        for d in listed
    ]
    report["usage_page"] = struct.unpack_from("<H", FIDO_REPORT_DESCRIPTOR, 1)[0]

    # Host -> device: what python-fido2 writes (report ID 0, then the 64-byte packet).
    packet = bytes(range(1, 65))
    device = os.open(hidraw, os.O_RDWR | os.O_CLOEXEC)
    read_event(uhid, UHID_OPEN)
    report["hidraw_write_returned"] = os.write(device, b"\0" + packet)
    output = read_event(uhid, UHID_OUTPUT)
    data = output[:UHID_DATA_MAX]
    size, rtype = struct.unpack_from("<HB", output, UHID_DATA_MAX)
    report["output_size"] = size
    report["output_rtype"] = rtype
    report["output_data_hex"] = data[:size].hex()

    # Device -> host: UHID_INPUT2 with the bare 64 bytes; hidraw reads them back.
    reply = bytes(range(101, 165))
    os.write(uhid, event(UHID_INPUT2, struct.pack("<H", len(reply)) + reply))
    select.select([device], [], [], 10.0)
    report["hidraw_read_hex"] = os.read(device, 4096).hex()

    os.close(device)
    os.write(uhid, event(UHID_DESTROY, b""))
    os.close(uhid)
    deadline = time.monotonic() + 10.0
    while os.path.exists(hidraw) and time.monotonic() < deadline:
        time.sleep(0.05)
    report["hidraw_gone_after_destroy"] = not os.path.exists(hidraw)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
