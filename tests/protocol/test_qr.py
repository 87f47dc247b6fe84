"""The FIDO:/ QR code (test-vectors.md §A5, §C)."""

import contextlib
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid.protocol import ProtocolError, QRCode, digits_decode, digits_encode
from tests.protocol.vectors import (
    CHROME_QR_CBOR,
    CHROME_QR_PUBLIC_KEY,
    CHROME_QR_SECRET,
    CHROME_QR_URL,
    KNOWN_QR_ENCODINGS,
    KNOWN_QR_POINT,
    KNOWN_QR_POINT_OFF_CURVE,
    KNOWN_QR_POINT_UNCOMPRESSED,
)

SECRET = bytes(16)


def _url(contents: dict[Any, Any]) -> str:
    return "FIDO:/" + digits_encode(cbor2.dumps(contents, canonical=True))


def test_c1_chrome_qr_decodes_and_round_trips() -> None:
    assert digits_decode(CHROME_QR_URL[6:]) == CHROME_QR_CBOR
    qr = QRCode.from_url(CHROME_QR_URL)
    assert qr.public_key == CHROME_QR_PUBLIC_KEY
    assert qr.secret == CHROME_QR_SECRET
    assert qr.known_domains == 2
    assert qr.timestamp == 1666589051
    assert qr.supports_linking is True
    assert qr.request_type == "mc"
    assert qr.to_cbor() == CHROME_QR_CBOR
    assert qr.to_url() == CHROME_QR_URL


def test_prefix_is_case_insensitive() -> None:
    assert QRCode.from_url("fido:/" + CHROME_QR_URL[6:]) == QRCode.from_url(CHROME_QR_URL)
    assert QRCode.from_url("FiDo:/" + CHROME_QR_URL[6:]).request_type == "mc"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "fido:/",
        "FIDO:/",
        "FIDO://",
        "FIDO:/0",
        "FIDO:/999",
        "FIDO:/000",
        "nonsense",
        "",
        "BIDO:/" + CHROME_QR_URL[6:],
        CHROME_QR_URL + "0",
    ],
)
def test_a5_invalid_urls(url: str) -> None:
    with pytest.raises(ProtocolError):
        QRCode.from_url(url)


def test_c4_point_decompresses() -> None:
    qr = QRCode(public_key=KNOWN_QR_POINT, secret=SECRET)
    assert qr.public_point == KNOWN_QR_POINT_UNCOMPRESSED


@pytest.mark.parametrize(
    ("extra", "known_domains", "linking", "request_type"),
    [
        ({}, 0, None, "ga"),
        ({2: 4567}, 4567, None, "ga"),
        ({4: True}, 0, True, "ga"),
        ({4: False}, 0, False, "ga"),
        ({5: "ga"}, 0, None, "ga"),
        ({5: "mc"}, 0, None, "mc"),
        ({5: "XX"}, 0, None, "ga"),
        ({1000: 42}, 0, None, "ga"),
        ({6: [0]}, 0, None, "ga"),
        ({6: True}, 0, None, "ga"),
        ({65535: 0, "x": b"y"}, 0, None, "ga"),
    ],
)
def test_c4_known_qrs_valid(
    extra: dict[Any, Any], known_domains: int, linking: bool | None, request_type: str
) -> None:
    qr = QRCode.from_url(_url({0: KNOWN_QR_POINT, 1: SECRET, **extra}))
    assert qr.known_domains == known_domains
    assert qr.supports_linking is linking
    assert qr.request_type == request_type


@pytest.mark.parametrize(
    "contents",
    [
        {0: KNOWN_QR_POINT_OFF_CURVE, 1: SECRET},
        {0: 42, 1: SECRET},
        {0: KNOWN_QR_POINT, 1: SECRET, 2: "foo"},
        {0: KNOWN_QR_POINT, 1: SECRET, 2: True},
        {0: KNOWN_QR_POINT, 1: SECRET, 2: -1},
        {0: KNOWN_QR_POINT, 1: SECRET, 3: "now"},
        {0: KNOWN_QR_POINT, 1: SECRET, 4: "foo"},
        {0: KNOWN_QR_POINT, 1: SECRET, 4: 1},
        {0: KNOWN_QR_POINT, 1: SECRET, 5: 42},
        {0: KNOWN_QR_POINT, 1: bytes(15)},
        {0: KNOWN_QR_POINT, 1: bytes(17)},
        {0: KNOWN_QR_POINT, 1: "secret"},
        {0: KNOWN_QR_POINT},
        {1: SECRET},
        {0: KNOWN_QR_POINT_UNCOMPRESSED, 1: SECRET},
        {0: KNOWN_QR_POINT[1:], 1: SECRET},
    ],
)
def test_c4_known_qrs_invalid(contents: dict[Any, Any]) -> None:
    with pytest.raises(ProtocolError):
        QRCode.from_url(_url(contents))


def test_not_a_map_and_trailing_bytes() -> None:
    with pytest.raises(ProtocolError):
        QRCode.from_url("FIDO:/" + digits_encode(cbor2.dumps([1, 2])))
    good = cbor2.dumps({0: KNOWN_QR_POINT, 1: SECRET})
    with pytest.raises(ProtocolError):
        QRCode.from_url("FIDO:/" + digits_encode(good + b"\x00"))


@pytest.mark.parametrize(("cbor_hex", "url"), KNOWN_QR_ENCODINGS)
def test_c4_comp_encodings(cbor_hex: str, url: str) -> None:
    assert "FIDO:/" + digits_encode(bytes.fromhex(cbor_hex)) == url
    QRCode.from_url(url)


def test_writes_keys_0_to_5_never_6_and_always_4() -> None:
    qr, _ = QRCode.generate("mc", now=1_700_000_000)
    contents = cbor2.loads(qr.to_cbor())
    assert sorted(contents) == [0, 1, 2, 3, 4, 5]
    assert contents[2] == 2 and contents[4] is True and contents[5] == "mc"
    parsed = QRCode.from_url(_url({0: KNOWN_QR_POINT, 1: SECRET, 1000: 1, 6: [0]}))
    rewritten = cbor2.loads(parsed.to_cbor())
    assert sorted(rewritten) == [0, 1, 2, 4, 5]
    assert rewritten[4] is False


def test_generated_qr_parses_back() -> None:
    qr, private_key = QRCode.generate("mc")
    parsed = QRCode.from_url(qr.to_url())
    assert parsed == qr
    assert parsed.known_domains >= 2 and parsed.supports_linking is True
    assert parsed.request_type == "mc"
    from hybrid.protocol.keys import point_bytes

    assert parsed.public_point == point_bytes(private_key.public_key())


def test_flipped_first_character_fails() -> None:
    qr, _ = QRCode.generate()
    url = qr.to_url()
    with pytest.raises(ProtocolError):
        QRCode.from_url(chr(ord(url[0]) ^ 4) + url[1:])


def test_secret_not_in_repr() -> None:
    qr, _ = QRCode.generate()
    assert qr.secret.hex() not in repr(qr) and repr(qr.secret) not in repr(qr)


@given(st.binary(max_size=300))
def test_any_cbor_bytes_parse_or_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        QRCode.from_cbor(data)


@given(st.text(max_size=300))
def test_any_url_parses_or_protocol_error(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        QRCode.from_url("FIDO:/" + text)


def test_fields_are_exactly_the_six_qr_fields() -> None:
    import dataclasses

    qr, _ = QRCode.generate("mc")
    fields = dataclasses.asdict(qr)
    assert list(fields) == [
        "public_key",
        "secret",
        "known_domains",
        "timestamp",
        "supports_linking",
        "request_type",
    ]
    assert QRCode(**fields) == qr
    assert dataclasses.replace(qr, request_type="ga").public_point == qr.public_point
