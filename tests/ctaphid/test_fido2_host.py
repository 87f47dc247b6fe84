"""python-fido2's real host (`CtapHidDevice`, `Ctap2`) on `CtapHidKey`, byte for byte: a cable
of a dozen lines feeds its reports to the machine, and the project's software key answers each
CBOR request synchronously. No thread, no clock."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from fido2.cose import CoseKey
from fido2.ctap import STATUS, CtapError
from fido2.ctap2.base import AttestationResponse, Ctap2
from fido2.hid import CTAPHID, CtapHidDevice
from fido2.hid.base import CtapHidConnection

from hybrid.authenticator.credentials import AAGUID
from hybrid.authenticator.key_core import StoreCredentialCore
from hybrid.authenticator.security_key import SoftwareSecurityKey
from hybrid.authenticator.security_key_hid import HidCommand, hid_descriptor
from hybrid.ctap import CtapStatus
from hybrid.ctaphid import (
    MAX_MESSAGE_SIZE,
    REPORT_SIZE,
    CancelRequested,
    CborRequest,
    CtapHidKey,
    KeepaliveStatus,
    Winked,
    frame_message,
)

CDH = b"\x42" * 32


class Cable(CtapHidConnection):
    """Output reports go into the machine; input reports come out of it. The key works on a
    request when the host reads and nothing is queued: one UPNEEDED keepalive, then its answer."""

    def __init__(self, key: CtapHidKey, authenticator: SoftwareSecurityKey) -> None:
        self.key = key
        self.authenticator = authenticator
        self.written: list[bytes] = []
        self.read: list[bytes] = []
        self.events: list[object] = []
        self._queued: deque[bytes] = deque()
        self._request: CborRequest | None = None
        self._command = HidCommand()
        self._now = 0.0

    def write_packet(self, data: bytes) -> None:
        self.written.append(bytes(data))
        self._now += 0.001  # a brisk host: no message times out
        for event in self.key.receive_report(bytes(data), self._now):
            self.events.append(event)
            if isinstance(event, CborRequest):
                self._request, self._command = event, HidCommand()
            elif isinstance(event, CancelRequested):
                self._command.cancelled.set()
        self._queued.extend(self.key.data_to_send())

    def read_packet(self) -> bytes:
        request = self._request
        if not self._queued and request is not None:
            if self._command.keepalive_status != STATUS.UPNEEDED:
                self._command.keepalive_status = STATUS.UPNEEDED
                self.key.keepalive(KeepaliveStatus.UP_NEEDED)
            else:
                self._request = None
                reply = self.authenticator.handle_cbor(request.request, self._command)
                self.key.answer(request.cid, reply)
            self._queued.extend(self.key.data_to_send())
        packet = self._queued.popleft()
        self.read.append(packet)
        return packet

    def close(self) -> None:
        pass


@pytest.fixture
def core() -> StoreCredentialCore:
    return StoreCredentialCore()  # passkeys in memory


@pytest.fixture
def authenticator(core: StoreCredentialCore) -> Iterator[SoftwareSecurityKey]:
    with SoftwareSecurityKey(core) as key:  # touched at once
        yield key


@pytest.fixture
def cable(authenticator: SoftwareSecurityKey) -> Cable:
    return Cable(CtapHidKey(), authenticator)


def make_credential(ctap2: Ctap2, **extra: Any) -> AttestationResponse:
    return ctap2.make_credential(
        CDH,
        {"id": "example.com"},
        {"id": b"user", "name": "user"},
        [{"type": "public-key", "alg": -7}],
        **extra,
    )


def test_python_fido2_frames_exactly_as_the_machine(cable: Cable) -> None:
    device = CtapHidDevice(hid_descriptor(), cable)
    assert (device.version, device.device_version) == (2, (0, 1, 0))
    cid = device._channel_id
    for size in (0, 57, 58, 1000, MAX_MESSAGE_SIZE):
        message = bytes(i % 253 for i in range(size))
        cable.written.clear()
        cable.read.clear()
        assert device.ping(message) == message
        assert cable.written == cable.read == frame_message(cid, CTAPHID.PING, message)
    device.wink()
    assert cable.events == [Winked(cid)]
    assert {len(packet) for packet in cable.written + cable.read} == {REPORT_SIZE}


def test_register_and_sign_through_the_machine(cable: Cable) -> None:
    ctap2 = Ctap2(CtapHidDevice(hid_descriptor(), cable))
    assert ctap2.info.aaguid == AAGUID  # getInfo's answer spans several packets
    seen: list[STATUS] = []
    attestation = make_credential(ctap2, on_keepalive=seen.append)
    assert seen == [STATUS.UPNEEDED]
    auth_data = attestation.auth_data
    credential = auth_data.credential_data
    assert credential is not None and auth_data.is_user_present()

    allow: list[Mapping[str, Any]] = [{"type": "public-key", "id": credential.credential_id}]
    assertion = ctap2.get_assertion("example.com", CDH, allow)
    assertion.verify(CDH, CoseKey.parse(credential.public_key))
    assert cable.key.running is None


def test_python_fido2_cancel_reaches_the_request(cable: Cable, core: StoreCredentialCore) -> None:
    device = CtapHidDevice(hid_descriptor(), cable)
    cancel = threading.Event()
    cancel.set()  # the user gave up before the key was even asked
    with pytest.raises(CtapError) as cancelled:
        make_credential(Ctap2(device), event=cancel)
    assert cancelled.value.code == CtapStatus.KEEPALIVE_CANCEL
    cid = device._channel_id
    assert frame_message(cid, CTAPHID.CANCEL, b"")[0] in cable.written
    assert CancelRequested(cid) in cable.events
    assert len(core.store) == 0
