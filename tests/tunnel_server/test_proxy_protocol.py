"""The PROXY protocol v2 parser against the byte layout of haproxy's doc/proxy-protocol.txt."""

from __future__ import annotations

import pytest

from hybrid.errors import HybridError
from tunnel_server.proxy_protocol import (
    SIGNATURE,
    Command,
    ProxyHeader,
    ProxyHeaderError,
    build_header,
    parse_header,
)

# Written out by hand from the spec: signature, 0x21 (v2, PROXY), 0x11 (INET, STREAM), length
# 12, 192.0.2.1 -> 198.51.100.2, ports 56324 -> 443.
TCP4 = bytes.fromhex("0d0a0d0a000d0a515549540a 21 11 000c c0000201 c6336402 dc04 01bb")
# 0x21 (INET6, STREAM), length 36, 2001:db8::1 -> 2001:db8::2, ports 1 -> 2.
TCP6 = bytes.fromhex(
    "0d0a0d0a000d0a515549540a 21 21 0024"
    " 20010db8000000000000000000000001 20010db8000000000000000000000002 0001 0002"
)
# 0x20 (v2, LOCAL), 0x00 (UNSPEC), length 0: a health check from the proxy itself.
LOCAL = bytes.fromhex("0d0a0d0a000d0a515549540a 20 00 0000")


def test_signature_is_the_specs() -> None:
    assert SIGNATURE == b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"


def test_tcp4() -> None:
    header = parse_header(TCP4 + b"GET / HTTP/1.1\r\n")
    assert header == ProxyHeader(
        Command.PROXY, ("192.0.2.1", 56324), ("198.51.100.2", 443), size=28
    )


def test_tcp6() -> None:
    header = parse_header(TCP6)
    assert header == ProxyHeader(Command.PROXY, ("2001:db8::1", 1), ("2001:db8::2", 2), size=52)


def test_local_keeps_the_real_peer() -> None:
    assert parse_header(LOCAL) == ProxyHeader(Command.LOCAL, None, None, size=16)


def test_local_ignores_addresses_it_carries() -> None:
    local_with_addresses = bytes([*TCP4[:12], 0x20, *TCP4[13:]])
    assert parse_header(local_with_addresses) == ProxyHeader(Command.LOCAL, None, None, 28)


def test_proxy_with_unspec_family_keeps_the_real_peer() -> None:
    unspec = SIGNATURE + bytes.fromhex("2100 0000")
    assert parse_header(unspec) == ProxyHeader(Command.PROXY, None, None, 16)


def test_tlvs_are_skipped() -> None:
    alpn = bytes.fromhex("01 0002") + b"h2"  # PP2_TYPE_ALPN
    authority = bytes.fromhex("02 0004") + b"a.io"  # PP2_TYPE_AUTHORITY
    tlvs = alpn + authority
    with_tlvs = TCP4[:14] + (12 + len(tlvs)).to_bytes(2, "big") + TCP4[16:] + tlvs
    header = parse_header(with_tlvs + b"rest")
    assert header is not None
    assert header.source == ("192.0.2.1", 56324)
    assert with_tlvs[header.size :] + b"rest" == b"rest"


@pytest.mark.parametrize("header", [TCP4, TCP6, LOCAL], ids=["tcp4", "tcp6", "local"])
def test_every_proper_prefix_needs_more_bytes(header: bytes) -> None:
    for end in range(len(header)):
        assert parse_header(header[:end]) is None
    assert parse_header(header) is not None


def test_build_header_matches_the_spec_layout() -> None:
    assert build_header(("192.0.2.1", 56324), ("198.51.100.2", 443)) == TCP4
    assert build_header(("2001:db8::1", 1), ("2001:db8::2", 2)) == TCP6
    assert build_header(None, None) == LOCAL


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", "version_1"),
        (b"PROXY", "version_1"),
        (b"GET /healthz HTTP/1.1\r\n\r\n", "bad_signature"),
        (b"\x16\x03\x01\x02\x00", "bad_signature"),  # a TLS ClientHello
        (b"\r\n\r\n\x00\r\nQUIX\n", "bad_signature"),
        (SIGNATURE + bytes.fromhex("11 11 000c"), "bad_version"),
        (SIGNATURE + bytes.fromhex("22 11 000c"), "bad_command"),
        (TCP4[:13] + b"\x12" + TCP4[14:], "bad_family"),  # UDP over IPv4
        (SIGNATURE + bytes.fromhex("21 31 00d8") + bytes(216), "bad_family"),  # UNIX
        (SIGNATURE + bytes.fromhex("21 11 0004") + bytes(4), "short_addresses"),
        (SIGNATURE + bytes.fromhex("21 21 000c") + bytes(12), "short_addresses"),
    ],
)
def test_malformed_headers_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError) as info:
        parse_header(data)
    assert info.value.reason == reason
    assert isinstance(info.value, HybridError)
