"""The phone's side of a QR-initiated hybrid session: `answer_qr`.

A thin driver over `hybrid.protocol.phone.PhoneConversation`: open a tunnel, advertise the
encrypted EID until the desktop connects, then let the conversation answer the handshake and
hand over the one CTAP command, which the authenticator answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hybrid.authenticator.ctap import SoftwareAuthenticator
from hybrid.ble.advertiser import Advertiser
from hybrid.ctap import command_name
from hybrid.errors import HybridError
from hybrid.protocol import Eid, QRCode, encrypt_advert, normalize_base_url, tunnel_domain
from hybrid.protocol.constants import EID_NONCE_SIZE
from hybrid.protocol.conversation import CtapRequest, PeerShutdown
from hybrid.protocol.domains import base_url
from hybrid.protocol.phone import PhoneConversation
from hybrid.transport import COMPUTER, ConversationTransport, peer_failures, time_limit
from hybrid.tunnel import Tunnel, warn_if_plaintext

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = 120.0
#: How long to wait for the desktop's shutdown message after answering.
_GOODBYE_TIMEOUT: Final = 1.0
_TIMEOUT_ADVICE: Final = (
    "make sure it still shows the QR code, that Bluetooth is on there, and scan again."
)

Status = Callable[[str], None]


@dataclass(frozen=True)
class PhoneSessionResult:
    """What happened: the command answered (None if the desktop hung up first) and its status."""

    command: str | None
    status: int | None
    linked: bool = False


class _AdvertiserOnce:
    """Calls the advertiser's `stop()` exactly once, however the session ends."""

    def __init__(self, advertiser: Advertiser) -> None:
        self._advertiser = advertiser
        self._stopped = False

    async def advertise(self, service_data: bytes) -> None:
        await self._advertiser.advertise(service_data)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            await self._advertiser.stop()
        except Exception:  # stopping must never hide the real outcome
            log.warning("could not stop advertising", exc_info=True)


async def answer_qr(
    qr_url: str,
    authenticator: SoftwareAuthenticator,
    advertiser: Advertiser,
    tunnel_url: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    link: bool = False,
    name: str = "fido-hybrid",
    domain_id: int = 0,
    on_status: Status | None = None,
) -> PhoneSessionResult:
    """Answer a `FIDO:/` QR code: one CTAP command, then the tunnel is closed.

    `tunnel_url` (`ws://host:port`) overrides the server; otherwise the domain `domain_id`
    names (0: Google's, as Chromium's phone uses). A CTAP error status is an answer, not a
    failure. Raises `HybridError` subclasses on failure. `advertiser.advertise()` is called
    once; `advertiser.stop()` exactly once, when the desktop connects or, at the latest,
    before this returns or raises; the tunnel is closed by then too.
    """
    once = _AdvertiserOnce(advertiser)
    try:
        qr = QRCode.from_url(qr_url)
        base = normalize_base_url(tunnel_url) if tunnel_url else base_url(tunnel_domain(domain_id))
        status = on_status or (lambda _message: None)
        if (warning := warn_if_plaintext(base)) is not None:
            status(warning)
        async with time_limit(timeout, "computer", _TIMEOUT_ADVICE):
            return await _session(
                qr, authenticator, once, base, name if link else None, domain_id, status
            )
    finally:
        await once.stop()


async def _session(
    qr: QRCode,
    authenticator: SoftwareAuthenticator,
    advertiser: _AdvertiserOnce,
    base: str,
    link_name: str | None,
    domain_id: int,
    status: Status,
) -> PhoneSessionResult:
    status("Connecting to the tunnel server")
    tunnel = await Tunnel.open_new(base, qr.tunnel_id)
    try:
        async with peer_failures(tunnel, COMPUTER):
            assert tunnel.routing_id is not None
            eid = Eid(os.urandom(EID_NONCE_SIZE), tunnel.routing_id, domain_id)
            conversation = PhoneConversation(
                qr, eid, authenticator.get_info_cbor(), link_name=link_name
            )
            transport = ConversationTransport(tunnel, conversation)
            await advertiser.advertise(encrypt_advert(qr.eid_key, eid))
            status("Advertising over Bluetooth; waiting for the computer to connect")
            handshake = await tunnel.recv()
            await advertiser.stop()
            conversation.receive(handshake)  # our reply and getInfo are queued
            await transport.flush()
            status("Connected; waiting for the computer's request")
            event = await transport.next_event()
            if not isinstance(event, CtapRequest):  # PeerShutdown: the desktop hung up
                return PhoneSessionResult(None, None, conversation.linked)
            reply = await authenticator.handle_ctap(event.payload)
            conversation.send_reply(reply)
            await transport.flush()
            await _wait_for_goodbye(transport)
            return PhoneSessionResult(command_name(event.payload[0]), reply[0], conversation.linked)
    finally:
        await advertiser.stop()
        await tunnel.close()


async def _wait_for_goodbye(transport: ConversationTransport) -> None:
    """Give the desktop a moment to send its shutdown message; phones then hang up anyway."""
    if transport.conversation.revision == 0:
        return
    with contextlib.suppress(TimeoutError, HybridError):
        async with asyncio.timeout(_GOODBYE_TIMEOUT):
            await transport.wait_for(PeerShutdown)
