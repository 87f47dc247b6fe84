"""The bridge's CTAP2 side: answers what a program sends the virtual key, with the phone.

getInfo is answered here (the phone is not reachable before a QR code is scanned);
makeCredential and getAssertion each run one hybrid ceremony and return the phone's reply byte
for byte, so the vendor fields a real phone adds reach the program untouched. Everything else a
USB key may be asked is refused with CTAP1_ERR_INVALID_COMMAND, as a key without it would.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import cbor2

from hybrid.ctap import (
    CtapCommand,
    CtapStatus,
    GetAssertionKey,
    InfoKey,
    MakeCredentialKey,
    decode_cbor_map,
)
from hybrid.desktop.session import HybridSession
from hybrid.errors import (
    BluetoothUnavailable,
    CeremonyTimeout,
    HybridError,
    ProtocolError,
)

log = logging.getLogger(__name__)

#: Opens a phone session for a QR request type ("mc" registers, "ga" signs in).
OpenSession = Callable[[str], AbstractAsyncContextManager[HybridSession]]

#: The bridge's AAGUID: all zeros, as for a key that attests nothing of its make.
BRIDGE_AAGUID: Final = bytes(16)
#: Largest CTAPHID message (CTAP 2.1 §11.2.4): 64-byte reports, 128 continuation packets.
MAX_MESSAGE_SIZE: Final = 7609


class KeepaliveStatus(enum.IntEnum):
    """CTAPHID_KEEPALIVE status bytes (CTAP 2.1 §11.2.9.2.1)."""

    PROCESSING = 1
    UP_NEEDED = 2


def bridge_get_info() -> bytes:
    """The bridge's own authenticatorGetInfo (CBOR, no status byte).

    It says only what every phone over hybrid gives: discoverable credentials, user presence
    and user verification on the phone, ES256 and Ed25519 as the phone offers them. No clientPin:
    the bridge has no PIN, and the phone verifies the user itself. PIN/UV protocol 2 is listed
    for the hmac-secret key agreement, which is not answered yet (clientPin is INVALID_COMMAND).
    """
    return cbor2.dumps(
        {
            InfoKey.VERSIONS: ["FIDO_2_0"],
            InfoKey.EXTENSIONS: ["credProtect"],
            InfoKey.AAGUID: BRIDGE_AAGUID,
            InfoKey.OPTIONS: {"rk": True, "up": True, "uv": True, "plat": False},
            InfoKey.MAX_MSG_SIZE: MAX_MESSAGE_SIZE,
            # python-fido2 builds its UV request on a PIN/UV protocol even for built-in UV
            InfoKey.PIN_UV_AUTH_PROTOCOLS: [2],
            InfoKey.TRANSPORTS: ["usb"],
        },
        canonical=True,
    )


def strip_usb_transports(request: bytes) -> bytes:
    """`request` (cmd ‖ CBOR) with `transports` taken out of its credential descriptors.

    A program talking to a USB key marks its credentials `transports: ["usb"]`; the phone holds
    them as hybrid credentials and some phones skip descriptors that do not list hybrid. A
    request without `transports` anywhere is returned unchanged, byte for byte.
    """
    command, body = request[0], request[1:]
    key = {
        CtapCommand.MAKE_CREDENTIAL: MakeCredentialKey.EXCLUDE_LIST,
        CtapCommand.GET_ASSERTION: GetAssertionKey.ALLOW_LIST,
    }.get(CtapCommand(command))
    if key is None or not body:
        return request
    members = decode_cbor_map(body)
    descriptors = members.get(key)
    if not isinstance(descriptors, list) or not any(
        isinstance(d, dict) and "transports" in d for d in descriptors
    ):
        return request
    members[key] = [_without_transports(d) for d in descriptors]
    return bytes([command]) + cbor2.dumps(members, canonical=True)


def _without_transports(descriptor: Any) -> Any:
    if not isinstance(descriptor, dict):
        return descriptor
    return {k: v for k, v in descriptor.items() if k != "transports"}


def status_for_error(error: BaseException) -> int:
    """The CTAP status a USB key would answer with when the phone path fails with `error`."""
    if isinstance(error, CeremonyTimeout | TimeoutError):
        return CtapStatus.USER_ACTION_TIMEOUT
    if isinstance(error, BluetoothUnavailable):
        return CtapStatus.NOT_ALLOWED
    if isinstance(error, ProtocolError):
        return CtapStatus.INVALID_CBOR
    return CtapStatus.OTHER


class PhoneResponder:
    """Answers one CTAP2 request at a time; a phone ceremony for each that needs a signature.

    `keepalive_status` tells the CTAPHID driver what to put in its keepalives: UP_NEEDED while
    the QR code is up, PROCESSING once the phone is connected. Cancel the `respond` task to
    cancel (CTAPHID_CANCEL, or the user's Cancel button): the session's exit closes the tunnel.
    """

    def __init__(self, open_session: OpenSession) -> None:
        self._open_session = open_session
        self.keepalive_status = KeepaliveStatus.PROCESSING

    async def respond(self, request: bytes) -> bytes:
        """Reply (status ‖ CBOR) to `request` (cmd ‖ CBOR)."""
        if not request:
            return bytes([CtapStatus.INVALID_LENGTH])
        command = request[0]
        if command == CtapCommand.GET_INFO:
            return bytes([CtapStatus.SUCCESS]) + bridge_get_info()
        if command not in (CtapCommand.MAKE_CREDENTIAL, CtapCommand.GET_ASSERTION):
            return bytes([CtapStatus.INVALID_COMMAND])
        try:
            forwarded = strip_usb_transports(request)
        except ProtocolError:
            return bytes([CtapStatus.INVALID_CBOR])
        request_type = "mc" if command == CtapCommand.MAKE_CREDENTIAL else "ga"
        try:
            return await self._ask_phone(request_type, forwarded)
        except (HybridError, TimeoutError) as error:
            log.info("the phone path failed: %s", error or type(error).__name__)
            return bytes([status_for_error(error)])

    async def _ask_phone(self, request_type: str, request: bytes) -> bytes:
        self.keepalive_status = KeepaliveStatus.UP_NEEDED
        try:
            async with self._open_session(request_type) as session:
                self.keepalive_status = KeepaliveStatus.PROCESSING
                return await session.transact(request)
        finally:
            self.keepalive_status = KeepaliveStatus.PROCESSING
