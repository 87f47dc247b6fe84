"""The desktop's side of a hybrid conversation, sans I/O.

handshake → the phone's post-handshake message (getInfo, maybe linking info) → one CTAP
request → updates and the reply → shutdown. The phone's revision decides the framing: a v2.0
phone sends a padded post-handshake map (linking info inside) and untyped CTAP records.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from hybrid.errors import PeerError, PeerReason, SessionSpent
from hybrid.protocol.conversation import (
    Connected,
    Conversation,
    CtapReply,
    Event,
    LinkingReceived,
    State,
)
from hybrid.protocol.eid import Eid
from hybrid.protocol.linking import LinkingInfo
from hybrid.protocol.messages import MessageType, PostHandshakeMessage, decode_update
from hybrid.protocol.noise import HandshakeInitiator
from hybrid.protocol.qr import QRCode


class DesktopConversation(Conversation):
    """The desktop's conversation with the phone that sent `eid` after scanning `qr`.

    The Noise initiator message is ready in `data_to_send()` from the start.
    """

    def __init__(self, qr: QRCode, qr_key: ec.EllipticCurvePrivateKey, eid: Eid) -> None:
        super().__init__()
        self._qr_key = qr_key
        self._initiator = HandshakeInitiator(qr.psk(eid), identity=qr_key)
        self._handshake_hash = b""
        self._outgoing.append(self._initiator.initial_message())

    def receive(self, message: bytes) -> list[Event]:
        """Take one tunnel message from the phone; return what it meant."""
        if self.state is State.HANDSHAKE:
            self._crypter, self._handshake_hash = self._initiator.process_response(message)
            self.state = State.POST_HANDSHAKE
            return []
        if self.state is State.POST_HANDSHAKE:
            return self._post_handshake(message)
        self._require(State.READY, State.AWAITING_REPLY, doing="receive a message")
        message_type, payload = self._open_frame(message)
        if message_type is MessageType.UPDATE:
            linking = decode_update(payload)
            return [] if linking is None else [self._linked(linking)]
        if message_type is MessageType.SHUTDOWN:
            self.state = State.CLOSED
            raise PeerError(
                "The phone ended the session without answering: unlock it, keep it near this "
                "computer and try again.",
                reason=PeerReason.ENDED_WITHOUT_ANSWER,
            )
        if message_type is MessageType.CTAP and self.state is State.AWAITING_REPLY:
            self.state = State.DONE
            return [CtapReply(payload)]
        raise self._unexpected(message_type, self.state)

    def _post_handshake(self, message: bytes) -> list[Event]:
        post = PostHandshakeMessage.decode(self._records().decrypt(message))
        if not post.supports_ctap or post.get_info is None:
            raise PeerError(
                "The phone does not offer passkeys over this connection: update the phone's "
                "operating system or use another phone.",
                reason=PeerReason.NO_CTAP,
            )
        self.revision = post.revision
        self.state = State.READY
        events: list[Event] = [Connected(post.revision, post.get_info)]
        if post.linking is not None:
            events.append(self._linked(post.linking))
        return events

    def _linked(self, linking: LinkingInfo) -> LinkingReceived:
        linking.verify(self._qr_key, self._handshake_hash)  # ProtocolError if forged
        return LinkingReceived(linking)

    def send_request(self, request: bytes) -> None:
        """Queue the one CTAP request (`command ‖ CBOR`); a second one is `SessionSpent`."""
        if self.state in (State.AWAITING_REPLY, State.DONE):
            raise SessionSpent()
        self._require(State.READY, doing="send a CTAP request")
        self._send_frame(MessageType.CTAP, request)
        self.state = State.AWAITING_REPLY

    def close(self) -> None:
        """Queue the shutdown message (revision 1, after the handshake); idempotent."""
        if self.state in (State.READY, State.AWAITING_REPLY, State.DONE):
            self._send_frame(MessageType.SHUTDOWN)
        self.state = State.CLOSED
