"""The hybrid (caBLE v2) protocol core: pure, synchronous, no I/O.

The names in `__all__` up to `ProtocolError` are the conformance API that checks outside this
repository call; keep them and their signatures exactly.
"""

from hybrid.errors import ProtocolError
from hybrid.protocol.conversation import (
    MAX_UPDATES,
    Connected,
    CtapReply,
    CtapRequest,
    Event,
    LinkingReceived,
    PeerShutdown,
    State,
)
from hybrid.protocol.crypter import Crypter
from hybrid.protocol.desktop import DesktopConversation
from hybrid.protocol.digits import digits_decode, digits_encode
from hybrid.protocol.domains import (
    ASSIGNED_DOMAINS,
    connect_path,
    connect_url,
    contact_url,
    new_tunnel_path,
    new_tunnel_url,
    normalize_base_url,
    tunnel_domain,
)
from hybrid.protocol.eid import Eid, decrypt_advert, encrypt_advert
from hybrid.protocol.keys import KeyPurpose, derive
from hybrid.protocol.linking import (
    LinkingInfo,
    compute_pairing_signature,
    verify_pairing_signature,
)
from hybrid.protocol.messages import (
    MessageType,
    PostHandshakeMessage,
    decode_message,
    decode_update,
    encode_message,
    encode_update,
)
from hybrid.protocol.noise import HandshakeInitiator, HandshakeType, respond_to_handshake
from hybrid.protocol.phone import PhoneConversation, new_linking_info
from hybrid.protocol.qr import QRCode

__all__ = [
    "digits_encode",
    "digits_decode",
    "QRCode",
    "derive",
    "KeyPurpose",
    "tunnel_domain",
    "Eid",
    "encrypt_advert",
    "decrypt_advert",
    "new_tunnel_url",
    "connect_url",
    "HandshakeInitiator",
    "respond_to_handshake",
    "Crypter",
    "ProtocolError",
    # Beyond the conformance API: the conversations the desktop and phone roles drive ...
    "DesktopConversation",
    "PhoneConversation",
    "Connected",
    "CtapReply",
    "CtapRequest",
    "Event",
    "LinkingReceived",
    "PeerShutdown",
    "State",
    "MAX_UPDATES",
    "new_linking_info",
    # ... and the pieces they are made of.
    "ASSIGNED_DOMAINS",
    "HandshakeType",
    "LinkingInfo",
    "MessageType",
    "PostHandshakeMessage",
    "compute_pairing_signature",
    "connect_path",
    "contact_url",
    "decode_message",
    "decode_update",
    "encode_message",
    "encode_update",
    "new_tunnel_path",
    "normalize_base_url",
    "verify_pairing_signature",
]
