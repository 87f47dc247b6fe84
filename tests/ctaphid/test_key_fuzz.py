"""Whatever a host writes, in whatever order, `CtapHidKey` neither raises nor emits anything but
whole, well-formed CTAPHID messages in 64-byte reports."""

from __future__ import annotations

import itertools
import struct

from fido2.hid import CTAPHID
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.ctaphid import (
    BROADCAST_CID,
    REPORT_SIZE,
    CborRequest,
    CtapHidKey,
    HidEvent,
    RequestAbandoned,
    frame_message,
)

# The two open channels (weighted), one a broadcast INIT may open, broadcast, one never open.
CIDS = [1, 2, 1, 2, 3, BROADCAST_CID, 0xDEADBEEF]
COMMANDS = [*CTAPHID, 0x00, 0x40, 0x7F]


def _pad(data: bytes) -> bytes:
    return data.ljust(REPORT_SIZE, b"\0")[:REPORT_SIZE]


init_reports = st.builds(
    lambda cid, cmd, length, data: _pad(struct.pack(">IBH", cid, 0x80 | cmd, length) + data),
    st.sampled_from(CIDS),
    st.sampled_from(COMMANDS) | st.integers(0, 0x7F),
    st.sampled_from([0, 1, 8, 57, 58, 200, 7609, 7610]) | st.integers(0, 0xFFFF),
    st.binary(max_size=57),
)
continuation_reports = st.builds(
    lambda cid, seq, data: _pad(struct.pack(">IB", cid, seq) + data),
    st.sampled_from(CIDS),
    st.integers(0, 3) | st.integers(0, 0x7F),
    st.binary(max_size=59),
)
# Packets of well-formed messages (a broadcast INIT's nonce included), so that channels open and
# requests run often enough for the rules after them to be reached too.
framed_packets = st.builds(
    lambda cid, cmd, payload, index: (packets := frame_message(cid, cmd, payload))[
        index % len(packets)
    ],
    st.sampled_from(CIDS),
    st.sampled_from([CTAPHID.INIT, CTAPHID.CBOR, CTAPHID.PING, CTAPHID.WINK, CTAPHID.CANCEL]),
    st.binary(min_size=8, max_size=8) | st.binary(max_size=130),
    st.sampled_from([0, 0, 0, 1, 2]),
)
any_bytes = st.binary(max_size=2 * REPORT_SIZE)
reports = framed_packets | init_reports | continuation_reports | any_bytes
elapsed = st.sampled_from([0.0, 0.01, 0.5, 0.6]) | st.floats(0, 2)

report_steps = st.tuples(st.just("report"), reports, elapsed)
actions = st.one_of(
    report_steps,
    report_steps,
    report_steps,
    st.tuples(st.just("answer"), st.sampled_from([None, *CIDS]), st.integers(0, 7700)),
    st.tuples(st.just("keepalive"), st.integers(0, 0xFF)),
    st.tuples(st.just("expire"), elapsed),
    st.tuples(st.just("reset")),
)


def assert_whole_messages(packets: list[bytes]) -> None:
    """Each init packet is followed by exactly the continuations its length needs, in order."""
    index = 0
    while index < len(packets):
        assert all(len(packet) == REPORT_SIZE for packet in packets[index:])
        cid, cmd, length = struct.unpack_from(">IBH", packets[index])
        assert cmd & 0x80
        continuations = -(-max(length - 57, 0) // 59)
        for seq in range(continuations):
            packet = packets[index + 1 + seq]
            assert struct.unpack_from(">IB", packet) == (cid, seq)
        index += 1 + continuations


@settings(max_examples=400, deadline=None)
@given(st.lists(actions, max_size=40))
def test_random_host_traffic(steps: list[tuple[object, ...]]) -> None:
    key = CtapHidKey(new_channel_id=itertools.count(1).__next__)
    for _ in range(2):  # channels 1 and 2 are open; 3 opens if a broadcast INIT comes
        key.receive_report(frame_message(BROADCAST_CID, CTAPHID.INIT, bytes(8))[0], 0.0)
    key.data_to_send()
    now = 0.0
    for step in steps:
        events: list[HidEvent] = []
        running_before = key.running
        if step[0] == "report":
            report, dt = step[1], step[2]
            assert isinstance(report, bytes) and isinstance(dt, float)
            now += dt
            events = key.receive_report(report, now)
        elif step[0] == "answer":
            cid, size = step[1], step[2]
            target = key.running if cid is None else cid  # None: the request that runs
            if target is not None:
                assert isinstance(target, int) and isinstance(size, int)
                key.answer(target, bytes(size))
        elif step[0] == "keepalive":
            status = step[1]
            assert isinstance(status, int)
            key.keepalive(status)
        elif step[0] == "expire":
            assert isinstance(step[1], float)
            now += step[1]
            key.expire(now)
        else:
            key.reset()
        requests = [event for event in events if isinstance(event, CborRequest)]
        assert len(requests) <= 1
        if requests:
            assert running_before is None and key.running == requests[0].cid
            assert requests[0].request
        for event in events:
            if isinstance(event, RequestAbandoned):
                assert event.cid == running_before
        assert_whole_messages(key.data_to_send())
