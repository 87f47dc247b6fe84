"""Key derivation and tunnel-server domains/URLs (test-vectors.md §B, §D, §E2, §F)."""

import hashlib

import pytest

from hybrid.protocol import (
    KeyPurpose,
    ProtocolError,
    connect_url,
    contact_url,
    derive,
    new_tunnel_url,
    normalize_base_url,
    tunnel_domain,
)
from tests.protocol.vectors import (
    KNOWN_ADVERT_CONNECT_URL,
    KNOWN_ADVERT_NEW_URL,
    KNOWN_ADVERT_SECRET,
)

TUNNEL_ID_ZERO = bytes.fromhex("3EEF97097986413B059EAA2A30D653D4")


def test_key_purposes_are_protocol_constants() -> None:
    assert [int(p) for p in KeyPurpose] == [1, 2, 3, 4, 5, 6]
    assert int(KeyPurpose.EID_KEY) == 1 and int(KeyPurpose.PER_CONTACT_ID_SECRET) == 6


def test_d1_d2_tunnel_ids() -> None:
    assert derive(bytes(16), b"", KeyPurpose.TUNNEL_ID, 16) == TUNNEL_ID_ZERO
    assert derive(KNOWN_ADVERT_SECRET, b"", 2, 16).hex().upper() == (
        "367CBBF5F5085DF4098476AFE4B9B1D2"
    )


@pytest.mark.parametrize("purpose", list(KeyPurpose))
def test_derive_is_hkdf_with_le32_info(purpose: KeyPurpose) -> None:
    import hmac

    secret, salt = b"\x07" * 32, b"\x09" * 8
    prk = hmac.new(salt, secret, hashlib.sha256).digest()
    okm = hmac.new(prk, int(purpose).to_bytes(4, "little") + b"\x01", hashlib.sha256).digest()
    assert derive(secret, salt, purpose, 32) == okm


def test_empty_salt_equals_zero_salt() -> None:
    assert derive(b"s", b"", 1, 64) == derive(b"s", bytes(32), 1, 64)


@pytest.mark.parametrize(
    ("args"),
    [
        (b"s", b"", 0, 16),
        (b"s", b"", 7, 16),
        (b"s", b"", 1, 0),
        (b"s", b"", 1, 9000),
        ("s", b"", 1, 16),
        (b"s", None, 1, 16),
        (b"s", b"", True, 16),
        (b"s", b"", 1, 1.5),
    ],
)
def test_derive_rejects_bad_input(args: tuple[object, ...]) -> None:
    with pytest.raises(ProtocolError):
        derive(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "domain"),
    [
        (0, "cable.ua5v.com"),
        (1, "cable.auth.com"),
        (256, "cable.qz2ekwmnd332c.info"),
        (257, "cable.4a6bwmj6hiyyd.net"),
        (266, "cable.wufkweyy3uaxb.com"),
        (0xF980, "cable.my4kstlhndi4c.net"),
    ],
)
def test_b_domains(code: int, domain: str) -> None:
    assert tunnel_domain(code) == domain


@pytest.mark.parametrize("code", [2, 3, 100, 255, -1, 65536, True])
def test_b_unassigned_domains_rejected(code: int) -> None:
    with pytest.raises(ProtocolError):
        tunnel_domain(code)


def test_b_every_generated_code_yields_a_domain() -> None:
    for code in range(256, 65536):
        name = tunnel_domain(code)
        assert name.startswith("cable.") and name.rsplit(".", 1)[1] in {"com", "org", "net", "info"}


def test_f_urls() -> None:
    domain = tunnel_domain(0xF980)
    routing = bytes([9, 10, 11])
    assert new_tunnel_url(domain, TUNNEL_ID_ZERO) == (
        "wss://cable.my4kstlhndi4c.net/cable/new/3EEF97097986413B059EAA2A30D653D4"
    )
    assert connect_url(domain, routing, TUNNEL_ID_ZERO) == (
        "wss://cable.my4kstlhndi4c.net/cable/connect/090A0B/3EEF97097986413B059EAA2A30D653D4"
    )
    assert connect_url(tunnel_domain(0), routing, TUNNEL_ID_ZERO) == (
        "wss://cable.ua5v.com/cable/connect/090A0B/3EEF97097986413B059EAA2A30D653D4"
    )
    assert connect_url(tunnel_domain(1), routing, TUNNEL_ID_ZERO) == (
        "wss://cable.auth.com/cable/connect/090A0B/3EEF97097986413B059EAA2A30D653D4"
    )
    assert "//cable.ua5v.com/" in new_tunnel_url(tunnel_domain(0), bytes(16))
    assert "//cable.wufkweyy3uaxb.com/" in new_tunnel_url(tunnel_domain(266), bytes(16))


def test_f7_known_advert_urls() -> None:
    tunnel_id = derive(KNOWN_ADVERT_SECRET, b"", 2, 16)
    assert new_tunnel_url("cable.ua5v.com", tunnel_id) == KNOWN_ADVERT_NEW_URL
    assert connect_url("cable.ua5v.com", bytes([2, 101, 85]), tunnel_id) == (
        KNOWN_ADVERT_CONNECT_URL
    )


def test_contact_url_is_base64url_without_padding() -> None:
    assert contact_url("cable.ua5v.com", b"\xfb\xff") == "wss://cable.ua5v.com/cable/contact/-_8"


@pytest.mark.parametrize(
    "args",
    [
        ("cable.ua5v.com", bytes(15)),
        ("cable.ua5v.com", bytes(17)),
        ("a/b", bytes(16)),
        ("", bytes(16)),
        ("cable.ua5v.com", "00" * 16),
    ],
)
def test_new_tunnel_url_rejects_bad_input(args: tuple[object, object]) -> None:
    with pytest.raises(ProtocolError):
        new_tunnel_url(*args)  # type: ignore[arg-type]


def test_connect_url_rejects_bad_routing_id() -> None:
    with pytest.raises(ProtocolError):
        connect_url("cable.ua5v.com", bytes(4), bytes(16))


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("ws://127.0.0.1:8080", "ws://127.0.0.1:8080"),
        ("wss://example.com/", "wss://example.com"),
        ("ws://localhost:8080", "ws://localhost:8080"),
        ("ws://[::1]:80", "ws://[::1]:80"),
    ],
)
def test_base_url_override(url: str, normalized: str) -> None:
    assert normalize_base_url(url) == normalized


@pytest.mark.parametrize(
    "url", ["http://x", "ws://host/path", "ws://", "wss://a b", "ws://h?q=1", "ftp://h"]
)
def test_base_url_override_rejects(url: str) -> None:
    with pytest.raises(ProtocolError):
        normalize_base_url(url)
