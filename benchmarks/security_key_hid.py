"""Benchmark: the software security key's CTAPHID timing, seen from python-fido2's host code.

Measures (1) PING round trips through `CtapHidDevice` for one-packet to largest messages,
(2) the KEEPALIVE cadence while a command waits for a touch (CTAP 2.1 wants one about every
100 ms; target 80-150 ms), and (3) how fast a CTAPHID_CANCEL ends that wait (target < 50 ms).

    python benchmarks/security_key_hid.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

from fido2.ctap import STATUS
from fido2.hid import CTAPHID, TYPE_INIT, CtapHidDevice

from hybrid.authenticator.security_key_hid import (
    MAX_MESSAGE_SIZE,
    HidCommand,
    VirtualCtapHid,
    frame_message,
    hid_descriptor,
)
from hybrid.ctap import CtapStatus


class WaitsForTouch:
    """A handler that waits like a key whose button nobody presses, until cancelled."""

    def handle_cbor(self, request: bytes, command: HidCommand) -> bytes:
        command.keepalive_status = STATUS.UPNEEDED
        command.cancelled.wait(30)
        return bytes([CtapStatus.KEEPALIVE_CANCEL])


def milliseconds(seconds: list[float]) -> str:
    values = [s * 1000 for s in seconds]
    return f"median {statistics.median(values):7.2f} ms, max {max(values):7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    hid = VirtualCtapHid(WaitsForTouch())
    try:
        device = CtapHidDevice(hid_descriptor(), hid.open())
        for size in (8, 57, 1024, MAX_MESSAGE_SIZE):
            payload, times = bytes(size), []
            for _ in range(rounds):
                start = time.perf_counter()
                device.ping(payload)
                times.append(time.perf_counter() - start)
            print(f"PING {size:5d} bytes: {milliseconds(times)}")

        raw = hid.open()
        cid = device._channel_id  # share python-fido2's channel, as a second host thread would
        keepalive_gaps, cancel_latency = [], []
        for _ in range(max(1, rounds // 5)):
            raw.write_packet(frame_message(cid, CTAPHID.CBOR, b"\x0b")[0])
            last = time.perf_counter()
            for _ in range(5):
                if raw.read_packet()[4] != TYPE_INIT | CTAPHID.KEEPALIVE:
                    raise SystemExit("expected a KEEPALIVE while the command waits")
                now = time.perf_counter()
                keepalive_gaps.append(now - last)
                last = now
            start = time.perf_counter()
            raw.write_packet(struct.pack(">IB", cid, TYPE_INIT | CTAPHID.CANCEL).ljust(64, b"\0"))
            while raw.read_packet()[4] != TYPE_INIT | CTAPHID.CBOR:
                pass
            cancel_latency.append(time.perf_counter() - start)
        print(f"KEEPALIVE interval: {milliseconds(keepalive_gaps)} (target 80-150 ms)")
        print(f"CANCEL to reply:    {milliseconds(cancel_latency)} (target < 50 ms)")
    finally:
        hid.close()


if __name__ == "__main__":
    main()
