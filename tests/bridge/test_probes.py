"""Probe routing (docs/bridge-sequences.md §8.2) without a phone: what reaches the phone, when.

A recording session stands in for the phone here; the phone's side of each rule runs for real
in test_bridge_client.py (python-fido2) and in the VM (Firefox).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import cbor2

from hybrid.bridge.probes import EMPTY_HASH, KEEP_SECONDS, MAX_SITES, ZERO_HASH, ProbedLists
from hybrid.bridge.request import BridgeRequest, CtapRequest
from hybrid.bridge.responder import PhoneResponder
from hybrid.ctap import CtapCommand, CtapStatus, decode_cbor_map
from hybrid.desktop.session import HybridSession

REAL_HASH = bytes(range(32))
CRED_A = {"type": "public-key", "id": b"A" * 16}
CRED_B = {"type": "public-key", "id": b"B" * 16}
PHONE_REPLY = b"\x00" + cbor2.dumps({1: CRED_A, 2: b"auth", 3: b"sig"})


class RecordingPhone:
    """Opens fake sessions; records each request it was sent and answers `reply`."""

    def __init__(self, reply: bytes = PHONE_REPLY) -> None:
        self.reply = reply
        self.sent: list[CtapRequest] = []
        self.shown: list[BridgeRequest] = []

    def __call__(self, request: BridgeRequest) -> contextlib.AbstractAsyncContextManager[Any]:
        self.shown.append(request)

        @contextlib.asynccontextmanager
        async def session() -> AsyncIterator[HybridSession]:
            yield cast(HybridSession, self)

        return session()

    async def transact(self, raw: bytes) -> bytes:
        self.sent.append(CtapRequest.parse(raw))
        return self.reply


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def get_assertion(client_data_hash: bytes, allow: list[Any] | None, **options: bool) -> bytes:
    members: dict[int, Any] = {1: "example.com", 2: client_data_hash}
    if allow is not None:
        members[3] = allow
    if options:
        members[5] = options
    return bytes([CtapCommand.GET_ASSERTION]) + cbor2.dumps(members)


def make_credential(
    rp_id: str = "example.com", exclude: list[Any] | None = None, **extra: Any
) -> bytes:
    members: dict[int, Any] = {
        1: REAL_HASH,
        2: {"id": rp_id},
        3: {"id": b"u", "name": "u"},
        4: [{"type": "public-key", "alg": -7}],
        **{int(k[1:]): v for k, v in extra.items()},
    }
    if exclude is not None:
        members[5] = exclude
    return bytes([CtapCommand.MAKE_CREDENTIAL]) + cbor2.dumps(members)


def responder(phone: RecordingPhone, clock: Clock | None = None) -> PhoneResponder:
    return PhoneResponder(phone, clock=clock or Clock())


async def test_python_fido2_zero_hash_probes_are_kept_and_put_back_into_the_request() -> None:
    phone = RecordingPhone()
    bridge = responder(phone)
    for cred in (CRED_A, CRED_B):  # one probe per credential, as python-fido2 chunks them
        reply = await bridge.respond(get_assertion(ZERO_HASH, [cred], up=False))
        assert reply == bytes([CtapStatus.NO_CREDENTIALS])
    assert phone.sent == []
    placeholder = [{"type": "public-key", "id": b"\0"}]
    assert await bridge.respond(get_assertion(REAL_HASH, placeholder, uv=True)) == PHONE_REPLY
    (sent,) = phone.sent
    assert sent.credentials == [CRED_A, CRED_B]
    assert (sent.client_data_hash, sent.options) == (REAL_HASH, {"uv": True})
    assert phone.shown == [BridgeRequest("ga", "example.com")]


async def test_a_probed_exclude_list_is_restored_when_the_client_drops_or_empties_it() -> None:
    dropped: list[Any] | None
    for dropped in (None, []):
        phone = RecordingPhone()
        bridge = responder(phone)
        assert await bridge.respond(get_assertion(EMPTY_HASH, [CRED_A], up=False)) == bytes(
            [CtapStatus.NO_CREDENTIALS]
        )
        await bridge.respond(make_credential(exclude=dropped))
        assert phone.sent[0].credentials == [CRED_A]


async def test_a_real_hash_probe_is_the_ceremony_and_its_answer_is_replayed_once() -> None:
    phone = RecordingPhone()
    bridge = responder(phone)
    probe = get_assertion(REAL_HASH, [CRED_A, CRED_B], up=False, uv=True)
    assert await bridge.respond(probe) == PHONE_REPLY
    (sent,) = phone.sent
    assert sent.options == {"uv": True}  # the phone asks the user: no "up": false
    follow_up = get_assertion(REAL_HASH, [CRED_A], uv=True)
    assert await bridge.respond(follow_up) == PHONE_REPLY
    assert len(phone.sent) == 1  # replayed, not asked again
    await bridge.respond(follow_up)
    assert len(phone.sent) == 2  # once only


async def test_kept_probes_expire() -> None:
    phone, clock = RecordingPhone(), Clock()
    bridge = responder(phone, clock)
    await bridge.respond(get_assertion(REAL_HASH, [CRED_A], up=False))
    await bridge.respond(get_assertion(ZERO_HASH, [CRED_B], up=False))
    clock.now = KEEP_SECONDS + 1
    await bridge.respond(get_assertion(REAL_HASH, [CRED_A]))
    placeholder = [{"type": "public-key", "id": b"\0"}]
    await bridge.respond(get_assertion(REAL_HASH, placeholder))
    assert [s.credentials for s in phone.sent] == [[CRED_A], [CRED_A], placeholder]


async def test_touch_requests_never_reach_the_phone() -> None:
    phone = RecordingPhone()
    bridge = responder(phone)
    for dummy in (
        make_credential(".dummy"),
        make_credential("make.me.blink"),
        make_credential("example.com", _8=b""),  # empty pinUvAuthParam: touch to select
    ):
        assert await bridge.respond(dummy) == bytes([CtapStatus.OPERATION_DENIED])
    assert phone.sent == []


async def test_firefox_allow_list_sign_in_fails_once_then_takes_two_steps() -> None:
    phone = RecordingPhone()
    bridge = responder(phone)
    notices: list[str] = []
    bridge.on_notice = notices.append
    probe = get_assertion(EMPTY_HASH, [CRED_A], up=False)
    assert await bridge.respond(probe) == bytes([CtapStatus.NO_CREDENTIALS])
    # Firefox gave up: it blinks the key and fails the sign-in
    assert await bridge.respond(make_credential("make.me.blink")) == bytes(
        [CtapStatus.OPERATION_DENIED]
    )
    assert len(notices) == 1 and "example.com" in notices[0]
    # The user tries again: the probe goes to the phone, then the real request too
    assert await bridge.respond(probe) == PHONE_REPLY
    assert await bridge.respond(get_assertion(REAL_HASH, [CRED_A])) == PHONE_REPLY
    assert [s.client_data_hash for s in phone.sent] == [EMPTY_HASH, REAL_HASH]
    assert phone.sent[0].options == {}  # asked with presence: the user confirms it


async def test_appid_probes_other_commands_and_malformed_requests() -> None:
    phone = RecordingPhone()
    bridge = responder(phone)
    appid = bytes([CtapCommand.GET_ASSERTION]) + cbor2.dumps(
        {1: "https://example.com/appid.json", 2: REAL_HASH, 3: [CRED_A], 5: {"up": False}}
    )
    assert await bridge.respond(appid) == bytes([CtapStatus.NO_CREDENTIALS])
    assert await bridge.respond(bytes([CtapCommand.GET_NEXT_ASSERTION])) == bytes(
        [CtapStatus.NOT_ALLOWED]
    )
    for command in (CtapCommand.CLIENT_PIN, CtapCommand.SELECTION, 0x40):
        assert await bridge.respond(bytes([command])) == bytes([CtapStatus.INVALID_COMMAND])
    no_site = bytes([CtapCommand.GET_ASSERTION]) + cbor2.dumps({2: REAL_HASH})
    short_hash = get_assertion(b"\x01" * 31, None)
    not_a_map = bytes([CtapCommand.MAKE_CREDENTIAL]) + cbor2.dumps([1, 2])
    for malformed in (no_site, short_hash, not_a_map):
        assert await bridge.respond(malformed) == bytes([CtapStatus.INVALID_CBOR])
    assert phone.sent == []
    info = decode_cbor_map((await bridge.respond(bytes([CtapCommand.GET_INFO])))[1:])
    assert (info[7], info[8]) == (64, 1023)  # Chromium sends lists whole, without probing


def test_probed_lists_are_bounded() -> None:
    lists = ProbedLists()
    for site in range(MAX_SITES + 5):
        lists.remember(f"site{site}.example", [CRED_A, CRED_A], now=0.0)
    assert lists.take("site0.example", 0.0) is None  # the oldest were dropped
    assert lists.take(f"site{MAX_SITES + 4}.example", 0.0) == [CRED_A]  # no duplicates
