"""PROXY protocol version 2 (HAProxy `send-proxy-v2`): the binary header a trusted proxy puts
in front of each connection to say which client it forwards.

Pure and incremental: `parse_header` gets the bytes received so far and answers "need more",
a header, or a `ProxyHeaderError`. Only v2 is accepted; the v1 text form is refused because a
node behind HAProxy is configured for exactly one form and guessing invites spoofing.

Layout (haproxy doc/proxy-protocol.txt, section 2.2):
  12-byte signature, 1 byte version (high nibble, 2) and command (low nibble, 0 LOCAL, 1 PROXY),
  1 byte family (high nibble: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) and transport (low nibble:
  0 UNSPEC, 1 STREAM, 2 DGRAM), 2 bytes big-endian length of the rest, then the addresses
  (INET: src 4, dst 4, src port 2, dst port 2; INET6: 16, 16, 2, 2) and TLVs, which we skip.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from hybrid.errors import HybridError

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: Signature, version/command, family/transport and the 16-bit length.
FIXED_SIZE = 16

_VERSION = 0x2
_STREAM = 0x1
_INET, _INET6 = 0x1, 0x2
_ADDRESS_SIZES = {_INET: 12, _INET6: 36}


class Command(enum.Enum):
    #: The proxy's own connection (health checks): keep the real peer address.
    LOCAL = 0x0
    #: A forwarded client: the header's source address is the client.
    PROXY = 0x1


class ProxyHeaderError(HybridError, ValueError):
    """The bytes in front of a connection are not an acceptable PROXY v2 header.

    `reason` is a short label for metrics and logs (e.g. "bad_signature", "bad_version").
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(
            f"invalid PROXY protocol v2 header ({detail}): configure the proxy with "
            "send-proxy-v2, or turn --proxy-protocol off if clients connect directly."
        )
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed header; `source` is None when the receiver must keep the real peer address
    (LOCAL, or PROXY with the UNSPEC family)."""

    command: Command
    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    #: Bytes the header took; what follows belongs to the client's own stream.
    size: int


def parse_header(data: bytes) -> ProxyHeader | None:
    """The header at the start of `data`, or None if more bytes are needed to decide."""
    prefix = data[: len(SIGNATURE)]
    if not SIGNATURE.startswith(prefix):
        if prefix.startswith(b"PROXY"):
            raise ProxyHeaderError("version_1", "a PROXY v1 text header; only v2 is accepted")
        raise ProxyHeaderError("bad_signature", "the connection does not start with one")
    if len(data) < FIXED_SIZE:
        return None
    version_command, family_transport, length = struct.unpack_from("!BBH", data, len(SIGNATURE))
    if version_command >> 4 != _VERSION:
        raise ProxyHeaderError("bad_version", f"version {version_command >> 4}, expected 2")
    try:
        command = Command(version_command & 0x0F)
    except ValueError:
        raise ProxyHeaderError(
            "bad_command", f"command {version_command & 0x0F}, expected LOCAL or PROXY"
        ) from None
    size = FIXED_SIZE + length
    if len(data) < size:
        return None
    if command is Command.LOCAL:
        return ProxyHeader(command, None, None, size)
    family, transport = family_transport >> 4, family_transport & 0x0F
    if family_transport == 0x00:
        return ProxyHeader(command, None, None, size)
    needed = _ADDRESS_SIZES.get(family)
    if needed is None or transport != _STREAM:
        raise ProxyHeaderError(
            "bad_family", f"family/transport 0x{family_transport:02x}; expected TCP over IPv4/6"
        )
    if length < needed:
        raise ProxyHeaderError(
            "short_addresses", f"{length} address bytes, the family needs {needed}"
        )
    block = data[FIXED_SIZE : FIXED_SIZE + needed]
    half = (needed - 4) // 2
    src = ipaddress.ip_address(block[:half])
    dst = ipaddress.ip_address(block[half : 2 * half])
    src_port, dst_port = struct.unpack_from("!HH", block, 2 * half)
    return ProxyHeader(command, (str(src), src_port), (str(dst), dst_port), size)


def build_header(
    source: tuple[str, int] | None, destination: tuple[str, int] | None, tlvs: bytes = b""
) -> bytes:
    """A v2 header (PROXY with addresses, or LOCAL when both are None); tests and tools use it
    to speak for a proxy."""
    if source is None or destination is None:
        return SIGNATURE + struct.pack("!BBH", 0x20, 0x00, len(tlvs)) + tlvs
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("source and destination must both be IPv4 or both IPv6")
    family = _INET if src.version == 4 else _INET6
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1]) + tlvs
    return SIGNATURE + struct.pack("!BBH", 0x21, family << 4 | _STREAM, len(body)) + body
