"""The bridge's CTAP2 side: answers what a program sends the virtual key, with the phone.

getInfo is answered here (the phone is not reachable before a QR code is scanned);
makeCredential and getAssertion each run one hybrid ceremony and return the phone's reply byte
for byte, so the vendor fields a real phone adds reach the program untouched. Probes are
routed as `probes` explains. Everything else a USB key may be asked is refused with
CTAP1_ERR_INVALID_COMMAND, as a key without it would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Final

import cbor2

from hybrid.ctap import CtapCommand, CtapStatus, InfoKey
from hybrid.ctaphid import MAX_MESSAGE_SIZE, KeepaliveStatus
from hybrid.desktop.session import HybridSession
from hybrid.errors import BluetoothUnavailable, CeremonyTimeout, HybridError, ProtocolError
from hybrid.text import MAX_SITE_SHOWN, shown

from .probes import CONSTANT_HASHES, AnswerCache, ProbedLists, is_appid, is_placeholder
from .request import BridgeRequest, CtapRequest

log = logging.getLogger(__name__)

#: Opens a phone session for one request (its QR request type and site).
OpenSession = Callable[[BridgeRequest], AbstractAsyncContextManager[HybridSession]]

#: The bridge's AAGUID: all zeros, as for a key that attests nothing of its make.
BRIDGE_AAGUID: Final = bytes(16)
MAX_CREDENTIALS_IN_LIST: Final = 64
#: WebAuthn's longest credential ID: nothing a site sends is filtered out.
MAX_CREDENTIAL_ID_LENGTH: Final = 1023


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
            # With both, Chromium sends a list in one request instead of probing it
            InfoKey.MAX_CREDENTIAL_COUNT_IN_LIST: MAX_CREDENTIALS_IN_LIST,
            InfoKey.MAX_CREDENTIAL_ID_LENGTH: MAX_CREDENTIAL_ID_LENGTH,
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
    ) -> None:
        self._open_session = open_session
        self._clock = clock
        self._probed = ProbedLists()
        self._answers = AnswerCache()
        #: Sites whose next constant-hash probe goes to the phone (see `_decline_touch`).
        self._two_step: set[str] = set()
        #: Told what the user should know that no ceremony shows (the window shows it).
        self.on_notice: Callable[[str], None] | None = None
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
        if command == CtapCommand.GET_NEXT_ASSERTION:
            return _status(CtapStatus.NOT_ALLOWED)  # the phone gave one; its tunnel is closed
        if command not in (CtapCommand.MAKE_CREDENTIAL, CtapCommand.GET_ASSERTION):
            return _status(CtapStatus.INVALID_COMMAND)
        try:
            parsed = CtapRequest.parse(request).without_usb_transports()
        except ProtocolError as error:
            log.info("refused a malformed request: %s", error)
            return _status(CtapStatus.INVALID_CBOR)
        if parsed.asks_for_a_touch_only:
            return self._decline_touch()
        if parsed.silent:
            return await self._probe(parsed)
        return await self._forward(parsed)

    def _decline_touch(self) -> bytes:
        """A touch request: never forwarded; declined at once (the bridge has no button)."""
        gave_up_on = self._probed.take_latest(self._clock())
        if gave_up_on is not None:
            # Firefox's sign-in with an allowList: its probe needs a signed answer, so it gave
            # up without sending the real request. Next time the probe goes to the phone.
            self._two_step.add(gave_up_on)
            self._notify(
                f"{shown(gave_up_on, 'The site', limit=MAX_SITE_SHOWN)} checked silently "
                "whether this key holds your passkey, which only your phone can answer: try "
                "again and confirm twice on your phone, or use the site's passkey sign-in "
                "without a username."
            )
        return _status(CtapStatus.OPERATION_DENIED)

    async def _probe(self, request: CtapRequest) -> bytes:
        """A silent getAssertion (`probes` says why each kind is answered as it is)."""
        rp_id, client_data_hash = request.rp_id, request.client_data_hash
        if is_appid(rp_id):
            return _status(CtapStatus.NO_CREDENTIALS)
        if client_data_hash in CONSTANT_HASHES and rp_id not in self._two_step:
            descriptors = request.credentials if isinstance(request.credentials, list) else []
            self._probed.remember(rp_id, descriptors, self._clock())
            log.info(
                "probe for %s (%d credentials) kept for the request that follows",
                shown(rp_id, "?", limit=MAX_SITE_SHOWN),
                len(descriptors),
            )
            return _status(CtapStatus.NO_CREDENTIALS)
        self._two_step.discard(rp_id)
        reply = await self._ask_phone(request.with_presence())
        if reply[:1] == _status(CtapStatus.SUCCESS):
            self._answers.keep(rp_id, client_data_hash, reply, self._clock())
        return reply

    async def _forward(self, request: CtapRequest) -> bytes:
        now = self._clock()
        kept = self._answers.take(request.rp_id, request.client_data_hash, now)
        if kept is not None:
            log.debug("answered with the phone's reply to the probe before it")
            return kept
        probed = self._probed.take(request.rp_id, now)
        lost_list = (
            request.credentials in (None, [])
            if request.make_credential
            else is_placeholder(request.credentials)
        )
        if probed and lost_list:  # the client dropped what its probes asked about
            log.info("put back the %d credentials probed before", len(probed))
            request = request.with_members(credentials=probed)
        return await self._ask_phone(request)

    def _notify(self, text: str) -> None:
        log.warning("%s", text)
        if self.on_notice is not None:
            self.on_notice(text)

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
