"""The encrypted channel both roles share once the Noise handshake is done."""

from __future__ import annotations

from hybrid.errors import ProtocolError
from hybrid.protocol import Crypter, MessageType, decode_message, encode_message
from hybrid.tunnel import Tunnel

#: Update messages a peer may send before its CTAP message; a peer that keeps sending them
#: would otherwise hold the other side until its timeout.
MAX_UPDATES = 16


class SecureChannel:
    """Records over a tunnel: `Crypter` on top, typed frames from revision 1 on.

    Revision 0 (protocol v2.0) has no type byte: every record after the post-handshake message
    is a CTAP message and there is no shutdown message.
    """

    def __init__(self, tunnel: Tunnel, crypter: Crypter, revision: int = 1) -> None:
        self.tunnel = tunnel
        self._crypter = crypter
        self.revision = revision

    async def send_record(self, plaintext: bytes) -> None:
        """Encrypt and send one record as it is (the post-handshake message has no type)."""
        await self.tunnel.send(self._crypter.encrypt(plaintext))

    async def recv_record(self) -> bytes:
        """Receive and decrypt one record."""
        return self._crypter.decrypt(await self.tunnel.recv())

    async def send_frame(self, message_type: MessageType, payload: bytes = b"") -> None:
        """Send a typed message (revision 0: CTAP only, without the type byte)."""
        if self.revision == 0:
            if message_type is not MessageType.CTAP:
                return  # v2.0 has no shutdown or update messages
            await self.send_record(payload)
        else:
            await self.send_record(encode_message(message_type, payload))

    async def recv_frame(self) -> tuple[MessageType, bytes]:
        """Receive a typed message."""
        plaintext = await self.recv_record()
        if self.revision == 0:
            if not plaintext:
                raise ProtocolError("empty message in the tunnel")
            return MessageType.CTAP, plaintext
        return decode_message(plaintext)
