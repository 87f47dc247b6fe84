"""Client addresses: which networks to trust or serve, and the key a client is counted under.

IPv6 clients are counted by prefix (a /64 by default), because one host usually owns a whole
/64 and could otherwise pick a fresh address for every connection.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The loopback networks: the default for --trusted-proxies and --metrics-allow.
LOOPBACK = ("127.0.0.0/8", "::1/128")


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings to networks; raises ValueError naming the bad entry."""
    networks = []
    for spec in specs:
        text = spec.strip()
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an address or CIDR network") from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """The address of a peer as asyncio reports it; IPv4-mapped IPv6 becomes plain IPv4."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: Address | None, networks: tuple[Network, ...]) -> bool:
    return address is not None and any(address in net for net in networks)


def client_key(address: Address | None, ipv6_prefix: int) -> str:
    """What per-address limits count: the IPv4 address, or the IPv6 address's /prefix."""
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))
