"""Base-10 digit encoding (test-vectors.md §A)."""

import contextlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid.protocol import ProtocolError, digits_decode, digits_encode


def test_a1_fixed_vector() -> None:
    assert digits_encode(b"ab\xff") == "16736865"
    assert digits_decode("16736865") == b"ab\xff"


@pytest.mark.parametrize(
    ("nbytes", "ndigits"),
    [(0, 0), (1, 3), (2, 5), (3, 8), (4, 10), (5, 13), (6, 15), (7, 17), (8, 20)],
)
def test_a2_zero_bytes(nbytes: int, ndigits: int) -> None:
    assert digits_encode(bytes(nbytes)) == "0" * ndigits
    assert digits_decode("0" * ndigits) == bytes(nbytes)


@pytest.mark.parametrize(
    "text",
    [
        "abc",
        "abc1234",
        "\uff11\uff12\uff13",  # full-width digits
        "1\u03082\u03083\u0308",  # digits with combining diaeresis
        "1",
        "12",
        "1234",
        "123456789012345678",
        "999",
        "99999999999999999",
        "a",
        "ab",
        " 123",
        "-12",
    ],
)
def test_a3_a4_decode_errors(text: str) -> None:
    with pytest.raises(ProtocolError):
        digits_decode(text)


def test_a4_zero_strings() -> None:
    decodable = {0, 3, 5, 8, 10, 13, 15, 17}
    for length in range(20):
        if length in decodable:
            assert set(digits_decode("0" * length)) <= {0}
        else:
            with pytest.raises(ProtocolError):
                digits_decode("0" * length)


def test_a4_random_round_trip() -> None:
    for length in range(24):
        data = os.urandom(length)
        assert digits_decode(digits_encode(data)) == data


def test_non_string_rejected() -> None:
    with pytest.raises(ProtocolError):
        digits_decode(b"123")  # type: ignore[arg-type]


@given(st.binary(max_size=200))
def test_round_trip(data: bytes) -> None:
    text = digits_encode(data)
    assert (text.isascii() and text.isdigit()) or text == ""
    assert digits_decode(text) == data


@given(st.text(max_size=60))
def test_any_text_decodes_or_protocol_error(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        digits_decode(text)
