"""The phone's side of a QR-initiated hybrid session: `answer_qr`.

Open a tunnel, advertise the encrypted EID until the desktop connects, answer the Noise
handshake, send getInfo (and linking info), answer exactly one CTAP command, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec

from hybrid.authenticator.ctap import SoftwareAuthenticator
from hybrid.ble.advertiser import Advertiser
from hybrid.channel import MAX_UPDATES, SecureChannel
from hybrid.errors import CeremonyTimeout, HybridError, PeerError, ProtocolError
from hybrid.protocol import (
    Eid,
    KeyPurpose,
    LinkingInfo,
    MessageType,
    PostHandshakeMessage,
    QRCode,
    compute_pairing_signature,
    derive,
    encode_update,
    encrypt_advert,
    normalize_base_url,
    respond_to_handshake,
    tunnel_domain,
)
from hybrid.protocol._cbor import cbor_decode_map
from hybrid.protocol.constants import EID_NONCE_SIZE, TUNNEL_ID_SIZE
from hybrid.protocol.domains import base_url
from hybrid.protocol.keys import point_bytes
from hybrid.tunnel import Tunnel, TunnelClosed

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = 120.0
#: How long to wait for the desktop's shutdown message after answering.
_GOODBYE_TIMEOUT: Final = 1.0
_CTAP_NAMES: Final = {0x01: "makeCredential", 0x02: "getAssertion", 0x04: "getInfo"}

Status = Callable[[str], None]


@dataclass(frozen=True)
class PhoneSessionResult:
    """What happened: the command answered (None if the desktop hung up first) and its status."""

    command: str | None
    status: int | None
    linked: bool = False


def _linking_info(qr: QRCode, handshake_hash: bytes, name: str) -> LinkingInfo:
    """Fresh linking info, derived the way Chromium's phone derives it.

    Nothing is stored and there is no push service behind the contact ID, so a desktop that
    keeps this info cannot wake this phone later; it is sent so desktops can be tested.
    """
    root_secret = os.urandom(32)
    contact_id = os.urandom(16)
    link_id = os.urandom(8)
    per_contact = derive(root_secret, contact_id, KeyPurpose.PER_CONTACT_ID_SECRET, 32)
    identity = ec.generate_private_key(ec.SECP256R1())
    return LinkingInfo(
        contact_id=contact_id,
        link_id=link_id,
        link_secret=derive(per_contact, link_id, KeyPurpose.PAIRED_SECRET, 32),
        authenticator_public_key=point_bytes(identity.public_key()),
        authenticator_name=name,
        handshake_signature=compute_pairing_signature(identity, qr.public_point, handshake_hash),
    )


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
        async with asyncio.timeout(timeout):
            return await _session(qr, authenticator, once, base, link, name, domain_id, status)
    except TimeoutError as exc:
        if isinstance(exc, HybridError):
            raise
        raise CeremonyTimeout(
            f"The computer did not finish within {timeout:g} s: make sure it still shows the "
            "QR code, that Bluetooth is on there, and scan again."
        ) from None
    finally:
        await once.stop()


async def _session(
    qr: QRCode,
    authenticator: SoftwareAuthenticator,
    advertiser: _AdvertiserOnce,
    base: str,
    link: bool,
    name: str,
    domain_id: int,
    status: Status,
) -> PhoneSessionResult:
    tunnel_id = derive(qr.secret, b"", KeyPurpose.TUNNEL_ID, TUNNEL_ID_SIZE)
    status("Connecting to the tunnel server")
    tunnel = await Tunnel.open_new(base, tunnel_id)
    try:
        assert tunnel.routing_id is not None
        eid = Eid(os.urandom(EID_NONCE_SIZE), tunnel.routing_id, domain_id)
        eid_key = derive(qr.secret, b"", KeyPurpose.EID_KEY, 64)
        await advertiser.advertise(encrypt_advert(eid_key, eid))
        status("Advertising over Bluetooth; waiting for the computer to connect")
        handshake = await tunnel.recv()
        await advertiser.stop()

        psk = derive(qr.secret, eid.to_bytes(), KeyPurpose.PSK, 32)
        response, crypter, handshake_hash = respond_to_handshake(
            psk, handshake, peer_identity=qr.public_point
        )
        await tunnel.send(response)
        revision = 0 if qr.supports_linking is None else 1
        channel = SecureChannel(tunnel, crypter, revision)
        post_handshake = PostHandshakeMessage(
            get_info=authenticator.get_info_cbor(), features=("ctap",), revision=revision
        )
        await channel.send_record(post_handshake.encode())
        linked = False
        if qr.supports_linking:
            linking = _linking_info(qr, handshake_hash, name) if link else None
            await channel.send_record(encode_update(linking))
            linked = linking is not None
        status("Connected; waiting for the computer's request")
        result = await _answer_one_command(channel, authenticator, linked)
        await _wait_for_goodbye(channel)
        return result
    except TunnelClosed as exc:
        raise PeerError(
            "The computer closed the connection before the sign-in finished: scan a new QR "
            f"code and try again ({exc})."
        ) from exc
    except ProtocolError as exc:
        tunnel.abort()
        raise ProtocolError(
            f"The computer broke the hybrid protocol ({exc}): have it show a new QR code and "
            "scan again; if it keeps happening, its hybrid support is not compatible."
        ) from exc
    except HybridError:
        tunnel.abort()
        raise
    finally:
        await advertiser.stop()
        await tunnel.close()


async def _answer_one_command(
    channel: SecureChannel, authenticator: SoftwareAuthenticator, linked: bool
) -> PhoneSessionResult:
    for _ in range(MAX_UPDATES + 1):
        message_type, payload = await channel.recv_frame()
        if message_type is MessageType.SHUTDOWN:
            return PhoneSessionResult(command=None, status=None, linked=linked)
        if message_type is MessageType.UPDATE:
            cbor_decode_map(payload, "update message")  # content ignored, must be valid
            continue
        if message_type is not MessageType.CTAP:
            raise ProtocolError(f"the computer sent an unsupported {message_type.name} message")
        if not payload:
            raise ProtocolError("the computer sent an empty CTAP message")
        response = await authenticator.handle_ctap(payload)
        await channel.send_frame(MessageType.CTAP, response)
        command = _CTAP_NAMES.get(payload[0], f"0x{payload[0]:02x}")
        return PhoneSessionResult(command=command, status=response[0], linked=linked)
    raise ProtocolError("the computer sent update after update instead of its request")


async def _wait_for_goodbye(channel: SecureChannel) -> None:
    """Give the desktop a moment to send its shutdown message; phones then hang up anyway."""
    if channel.revision == 0:
        return
    with contextlib.suppress(TimeoutError, HybridError):
        async with asyncio.timeout(_GOODBYE_TIMEOUT):
            while True:
                message_type, _ = await channel.recv_frame()
                if message_type is MessageType.SHUTDOWN:
                    return
