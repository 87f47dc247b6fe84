"""The bridge's CTAP2 side: answers what a program sends the virtual key, with the phone.

getInfo is answered here (the phone is not reachable before a QR code is scanned);
makeCredential and getAssertion each run one hybrid ceremony and return the phone's reply byte
for byte, so the vendor fields a real phone adds reach the program untouched. Probes are
routed as `probes` explains. Everything else a USB key may be asked is refused with
CTAP1_ERR_INVALID_COMMAND, as a key without it would.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Final

import cbor2

from hybrid.ctap import CtapCommand, CtapStatus, InfoKey
from hybrid.ctaphid import KeepaliveStatus
from hybrid.desktop.session import HybridSession
from hybrid.errors import BluetoothUnavailable, CeremonyTimeout, HybridError, ProtocolError

from .probes import ZERO_HASH, AnswerCache, ProbedLists, is_placeholder
from .request import BridgeRequest, CtapRequest

log = logging.getLogger(__name__)

#: Opens a phone session for one request (its QR request type and site).
OpenSession = Callable[[BridgeRequest], AbstractAsyncContextManager[HybridSession]]

#: The bridge's AAGUID: all zeros, as for a key that attests nothing of its make.
BRIDGE_AAGUID: Final = bytes(16)
#: Largest CTAPHID message (CTAP 2.1 §11.2.4): 64-byte reports, 128 continuation packets.
MAX_MESSAGE_SIZE: Final = 7609
#: How long a "touch to select" request waits before it is answered USER_ACTION_TIMEOUT.
TOUCH_TIMEOUT: Final = 30.0


def bridge_get_info() -> bytes:
    """The bridge's own authenticatorGetInfo (CBOR, no status byte).

    It says only what every phone over hybrid gives: discoverable credentials, user presence
    and user verification on the phone, ES256 and Ed25519 as the phone offers them. No clientPin:
    the bridge has no PIN, and the phone verifies the user itself. PIN/UV protocol 2 is listed
    because python-fido2 builds its UV request on a PIN/UV protocol even for built-in UV.
    """
    return cbor2.dumps(
        {
            InfoKey.VERSIONS: ["FIDO_2_0"],
            InfoKey.EXTENSIONS: ["credProtect"],
            InfoKey.AAGUID: BRIDGE_AAGUID,
            InfoKey.OPTIONS: {"rk": True, "up": True, "uv": True, "plat": False},
            InfoKey.MAX_MSG_SIZE: MAX_MESSAGE_SIZE,
            InfoKey.PIN_UV_AUTH_PROTOCOLS: [2],
            InfoKey.TRANSPORTS: ["usb"],
        },
        canonical=True,
    )


def status_for_error(error: BaseException) -> int:
    """The CTAP status a USB key would answer with when the phone path fails with `error`."""
    if isinstance(error, CeremonyTimeout | TimeoutError):
        return CtapStatus.USER_ACTION_TIMEOUT
    if isinstance(error, BluetoothUnavailable):
        return CtapStatus.NOT_ALLOWED
    if isinstance(error, ProtocolError):
        return CtapStatus.INVALID_CBOR
    return CtapStatus.OTHER


def _status(status: int) -> bytes:
    return bytes([status])


class PhoneResponder:
    """Answers one CTAP2 request at a time; a phone ceremony for each that needs a signature.

    `keepalive_status` tells the CTAPHID driver what to put in its keepalives: UP_NEEDED while
    the QR code is up, PROCESSING once the phone is connected. Cancel the `respond` task to
    cancel (CTAPHID_CANCEL, or the user's Cancel button): the session's exit closes the tunnel.
    """

    def __init__(
        self,
        open_session: OpenSession,
        *,
        clock: Callable[[], float] = time.monotonic,
        touch_timeout: float = TOUCH_TIMEOUT,
    ) -> None:
        self._open_session = open_session
        self.touch_timeout = touch_timeout
        self._clock = clock
        self._probed = ProbedLists()
        self._answers = AnswerCache()
        self.keepalive_status = KeepaliveStatus.PROCESSING
        #: The last error the phone path failed with (for the window and the logs).
        self.last_error: BaseException | None = None

    async def respond(self, request: bytes) -> bytes:
        """Reply (status ‖ CBOR) to `request` (cmd ‖ CBOR)."""
        if not request:
            return _status(CtapStatus.INVALID_LENGTH)
        command = request[0]
        if command == CtapCommand.GET_INFO:
            return _status(CtapStatus.SUCCESS) + bridge_get_info()
        if command not in (CtapCommand.MAKE_CREDENTIAL, CtapCommand.GET_ASSERTION):
            return _status(CtapStatus.INVALID_COMMAND)
        try:
            parsed = CtapRequest.parse(request).without_usb_transports()
        except ProtocolError as error:
            log.info("refused a malformed request: %s", error)
            return _status(CtapStatus.INVALID_CBOR)
        if parsed.asks_for_a_touch_only:
            return await self._wait_for_a_touch()
        return await self._route(parsed)

    async def _route(self, request: CtapRequest) -> bytes:
        now = self._clock()
        rp_id, client_data_hash = request.rp_id, request.client_data_hash
        if request.silent and client_data_hash == ZERO_HASH:
            descriptors = request.credentials if isinstance(request.credentials, list) else []
            self._probed.remember(rp_id, descriptors, now)
            return _status(CtapStatus.NO_CREDENTIALS)
        if request.silent:
            reply = await self._ask_phone(request.with_presence())
            if reply[:1] == _status(CtapStatus.SUCCESS):
                self._answers.keep(rp_id, client_data_hash, reply, now)
            return reply
        kept = self._answers.take(rp_id, client_data_hash, now)
        if kept is not None:
            log.debug("answered with the phone's reply to the probe before it")
            return kept
        probed = self._probed.take(rp_id, now)
        lost_list = (
            request.credentials is None
            if request.make_credential
            else is_placeholder(request.credentials)
        )
        if probed and lost_list:  # python-fido2 dropped what its probes asked about
            request = request.with_members(credentials=probed)
        return await self._ask_phone(request)

    async def _wait_for_a_touch(self) -> bytes:
        """A "touch to select" request: the bridge has no button, so it waits like an untouched
        key until the program cancels it (the user touched another key) or the time is up."""
        self.keepalive_status = KeepaliveStatus.UP_NEEDED
        try:
            await asyncio.sleep(self.touch_timeout)
        finally:
            self.keepalive_status = KeepaliveStatus.PROCESSING
        return _status(CtapStatus.USER_ACTION_TIMEOUT)

    async def _ask_phone(self, request: CtapRequest) -> bytes:
        self.keepalive_status = KeepaliveStatus.UP_NEEDED
        try:
            async with self._open_session(request.shown_as) as session:
                self.keepalive_status = KeepaliveStatus.PROCESSING
                reply = await session.transact(request.raw)
        except (HybridError, TimeoutError) as error:
            log.info("the phone path failed: %s", error or type(error).__name__)
            self.last_error = error
            return _status(status_for_error(error))
        finally:
            self.keepalive_status = KeepaliveStatus.PROCESSING
        self.last_error = None
        return reply
