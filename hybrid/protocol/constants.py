"""Sizes, names and identifiers fixed by the hybrid protocol (see docs/hybrid-protocol.md)."""

from __future__ import annotations

from typing import Final

QR_PREFIX: Final = "FIDO:/"
QR_SECRET_SIZE: Final = 16
COMPRESSED_POINT_SIZE: Final = 33
UNCOMPRESSED_POINT_SIZE: Final = 65

EID_NONCE_SIZE: Final = 10
ROUTING_ID_SIZE: Final = 3
TUNNEL_ID_SIZE: Final = 16
EID_SIZE: Final = 16
ADVERT_SIZE: Final = 20
EID_KEY_SIZE: Final = 64
PSK_SIZE: Final = 32

#: 16-bit service-data UUIDs carrying caBLE adverts: FIDO's and Google's.
FIDO_SERVICE_UUID16: Final = 0xFFF9
GOOGLE_SERVICE_UUID16: Final = 0xFDE2
FIDO_SERVICE_UUID: Final = "0000fff9-0000-1000-8000-00805f9b34fb"
GOOGLE_SERVICE_UUID: Final = "0000fde2-0000-1000-8000-00805f9b34fb"
CABLE_SERVICE_UUIDS: Final = (FIDO_SERVICE_UUID, GOOGLE_SERVICE_UUID)

#: WebSocket subprotocol and headers of the tunnel service.
CABLE_WEBSOCKET_PROTOCOL: Final = "fido.cable"
ROUTING_ID_HEADER: Final = "X-caBLE-Routing-ID"
CLIENT_PAYLOAD_HEADER: Final = "X-caBLE-Client-Payload"
SIGNAL_CONNECTION_HEADER: Final = "X-caBLE-Signal-Connection"

#: Path prefixes on the tunnel server.
NEW_TUNNEL_PATH: Final = "/cable/new/"
CONNECT_PATH: Final = "/cable/connect/"
CONTACT_PATH: Final = "/cable/contact/"

#: Chromium refuses incoming WebSocket messages larger than this.
MAX_INCOMING_MESSAGE_SIZE: Final = 1 << 20
