"""The phone's side of a hybrid conversation, sans I/O.

The desktop's Noise message → our response, the post-handshake message (getInfo) and, for a
v2.1 desktop, an update (with linking info if asked) → one CTAP request → our reply → the
desktop's shutdown. A QR code without key 4 comes from a v2.0 desktop: revision 0 framing.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric import ec

from hybrid.protocol.cbor import cbor_decode_map
from hybrid.protocol.conversation import (
    Connected,
    Conversation,
    CtapRequest,
    Event,
    PeerShutdown,
    State,
)
from hybrid.protocol.eid import Eid
from hybrid.protocol.keys import KeyPurpose, derive, point_bytes
from hybrid.protocol.linking import LinkingInfo, compute_pairing_signature
from hybrid.protocol.messages import MessageType, PostHandshakeMessage, encode_update
from hybrid.protocol.noise import respond_to_handshake
from hybrid.protocol.qr import QRCode


def new_linking_info(qr: QRCode, handshake_hash: bytes, name: str) -> LinkingInfo:
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


class PhoneConversation(Conversation):
    """The phone's conversation with the desktop that showed `qr`, advertised as `eid`.

    `get_info` is the authenticator's getInfo CBOR; `link_name` set sends linking info under
    that name to a desktop that supports linking. `linked` says whether it was sent.
    """

    def __init__(
        self, qr: QRCode, eid: Eid, get_info: bytes, *, link_name: str | None = None
    ) -> None:
        super().__init__()
        self._qr = qr
        self._psk = qr.psk(eid)
        self._get_info = get_info
        self._link_name = link_name
        self.revision = 0 if qr.supports_linking is None else 1
        self.linked = False

    def receive(self, message: bytes) -> list[Event]:
        """Take one tunnel message from the desktop; return what it meant."""
        if self.state is State.HANDSHAKE:
            return self._handshake(message)
        self._require(State.READY, State.ANSWERED, doing="receive a message")
        message_type, payload = self._open_frame(message)
        if message_type is MessageType.SHUTDOWN:
            self.state = State.CLOSED
            return [PeerShutdown()]
        if message_type is MessageType.UPDATE:
            cbor_decode_map(payload, "update message")  # content ignored, must be valid
            return []
        if message_type is MessageType.CTAP and self.state is State.READY:
            self.state = State.ANSWERING
            return [CtapRequest(payload)]
        raise self._unexpected(message_type, self.state)

    def _handshake(self, message: bytes) -> list[Event]:
        response, self._crypter, handshake_hash = respond_to_handshake(
            self._psk, message, peer_identity=self._qr.public_point
        )
        self._outgoing.append(response)
        post = PostHandshakeMessage(
            get_info=self._get_info, features=("ctap",), revision=self.revision
        )
        self._send_record(post.encode())
        if self._qr.supports_linking:
            linking = None
            if self._link_name is not None:
                linking = new_linking_info(self._qr, handshake_hash, self._link_name)
            self._send_record(encode_update(linking))
            self.linked = linking is not None
        self.state = State.READY
        return [Connected(self.revision)]

    def send_reply(self, reply: bytes) -> None:
        """Queue the answer (`status ‖ CBOR`) to the request of the last `CtapRequest`."""
        self._require(State.ANSWERING, doing="send a CTAP reply")
        self._send_frame(MessageType.CTAP, reply)
        # v2.0 has no shutdown message: the conversation is over once the reply is out.
        self.state = State.CLOSED if self.revision == 0 else State.ANSWERED
