"""Tunnel-server domains and the WebSocket URLs built on them."""

from __future__ import annotations

import base64
import hashlib
import re

from hybrid.errors import ProtocolError
from hybrid.protocol.cbor import require_bytes, require_int
from hybrid.protocol.constants import (
    CONNECT_PATH,
    CONTACT_PATH,
    NEW_TUNNEL_PATH,
    ROUTING_ID_SIZE,
    TUNNEL_ID_SIZE,
)

#: Domain IDs below 256 index this list (0: Google, 1: Apple); the rest of 2..255 is unassigned.
ASSIGNED_DOMAINS = ("cable.ua5v.com", "cable.auth.com")
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_TLDS = ("com", "org", "net", "info")
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_BASE_URL_RE = re.compile(r"^(wss?)://([^/?#\s]+)/?$")


def is_known_domain_id(domain_id: int) -> bool:
    """True for assigned IDs (0, 1) and generated ones (>= 256), as Chromium's ToKnownDomainID."""
    return 0 <= domain_id <= 0xFFFF and (domain_id >= 256 or domain_id < len(ASSIGNED_DOMAINS))


def tunnel_domain(domain_id: int) -> str:
    """Host name of the tunnel server a phone named by its 16-bit domain ID."""
    require_int(domain_id, "domain ID", maximum=0xFFFF)
    if not is_known_domain_id(domain_id):
        raise ProtocolError(f"tunnel server domain ID {domain_id} is not assigned")
    if domain_id < 256:
        return ASSIGNED_DOMAINS[domain_id]
    template = b"caBLEv2 tunnel server domain" + domain_id.to_bytes(2, "little") + b"\x00"
    value = int.from_bytes(hashlib.sha256(template).digest()[:8], "little")
    tld = _TLDS[value & 3]
    value >>= 2
    label = []
    while value:
        label.append(_BASE32[value & 31])
        value >>= 5
    return "cable." + "".join(label) + "." + tld


def _check_domain(domain: str) -> str:
    if not isinstance(domain, str) or not _HOST_RE.match(domain):
        raise ProtocolError(f"{domain!r} is not a valid tunnel server host name")
    return domain


def _hex(data: bytes, size: int, what: str) -> str:
    data = require_bytes(data, what)
    if len(data) != size:
        raise ProtocolError(f"{what} must be {size} bytes")
    return data.hex().upper()


def base_url(domain: str) -> str:
    """The `wss://` base URL of a tunnel-server host."""
    return "wss://" + _check_domain(domain)


def normalize_base_url(url: str) -> str:
    """Validate a `ws://host:port` / `wss://host` override and drop any trailing slash."""
    match = _BASE_URL_RE.match(url) if isinstance(url, str) else None
    if not match or not _HOST_RE.match(match.group(2)):
        raise ProtocolError(
            f"tunnel URL {url!r} must look like ws://host:port or wss://host (no path)"
        )
    return f"{match.group(1)}://{match.group(2)}"


def new_tunnel_path(tunnel_id: bytes) -> str:
    """`/cable/new/{TUNNEL_ID}`: the path a phone opens."""
    return NEW_TUNNEL_PATH + _hex(tunnel_id, TUNNEL_ID_SIZE, "tunnel ID")


def connect_path(routing_id: bytes, tunnel_id: bytes) -> str:
    """`/cable/connect/{ROUTING_ID}/{TUNNEL_ID}`: the path a desktop opens."""
    routing = _hex(routing_id, ROUTING_ID_SIZE, "routing ID")
    return CONNECT_PATH + routing + "/" + _hex(tunnel_id, TUNNEL_ID_SIZE, "tunnel ID")


def contact_path(contact_id: bytes) -> str:
    """`/cable/contact/{base64url(contact ID)}`: a linked desktop wakes the phone."""
    contact_id = require_bytes(contact_id, "contact ID")
    if not contact_id:
        raise ProtocolError("contact ID must not be empty")
    return CONTACT_PATH + base64.urlsafe_b64encode(contact_id).rstrip(b"=").decode("ascii")


def new_tunnel_url(domain: str, tunnel_id: bytes) -> str:
    """`wss://{domain}/cable/new/{HEX}` (uppercase hex, as Chromium and kanidm send)."""
    return base_url(domain) + new_tunnel_path(tunnel_id)


def connect_url(domain: str, routing_id: bytes, tunnel_id: bytes) -> str:
    """`wss://{domain}/cable/connect/{HEX}/{HEX}`."""
    return base_url(domain) + connect_path(routing_id, tunnel_id)


def contact_url(domain: str, contact_id: bytes) -> str:
    """`wss://{domain}/cable/contact/{base64url}`."""
    return base_url(domain) + contact_path(contact_id)
