"""`hybrid.text`: what the other side wrote, made safe for a terminal or a log."""

from __future__ import annotations

import unicodedata

import pytest

from hybrid.text import MAX_SHOWN, REPLACEMENT, printable, printable_lines, shown

#: C0 controls, DEL, C1 controls (CSI, NEL), bidi embeddings/overrides and isolates, LS, PS.
UNSAFE = [
    *map(chr, range(0x20)),
    "\x7f",
    *map(chr, range(0x80, 0xA0)),
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    "\u2028",
    "\u2029",
]


@pytest.mark.parametrize("char", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_every_control_and_bidi_character_is_replaced(char: str) -> None:
    assert printable(f"a{char}b") == f"a{REPLACEMENT}b"


def test_a_screen_clearing_name_loses_its_escape_but_keeps_its_words() -> None:
    assert printable("\x1b[2J\x1b[HPixel \u202eevil") == "?[2J?[HPixel ?evil"


def test_ordinary_text_in_any_script_is_left_alone() -> None:
    text = "Ana's Pixel 9 — 東京 ☎ Ελένη"
    assert printable(text) == text
    assert all(unicodedata.category(c)[0] != "C" for c in printable(text))


def test_lines_keep_their_breaks_and_lose_the_rest() -> None:
    assert printable_lines("one\x1b[31m\ntwo\r\n") == "one?[31m\ntwo?\n"


def test_shown_falls_back_and_keeps_both_ends_of_a_long_text() -> None:
    assert shown(None, "the phone") == "the phone" and shown("", "x") == "x"
    long = "bank.example." + "a" * 200 + ".evil.test"
    clipped = shown(long, "?")
    assert len(clipped) == MAX_SHOWN
    assert clipped.startswith("bank.example.") and clipped.endswith(".evil.test")
    assert shown(long, "?", limit=255) == long
