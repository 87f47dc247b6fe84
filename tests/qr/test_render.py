"""Draw hybrid QR codes every way the CLI can, then read each back with the real zbarimg."""

from __future__ import annotations

import os
import random
import re
import stat
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from qrcode import util as qr_util

from hybrid.errors import HybridError, ProtocolError, ProtocolReason
from hybrid.qr import decode_qr_image, make_qr, render, render_terminal, write_png, write_svg
from hybrid.qr.render import QrRenderError, RenderProblem

CHROME_URL = (
    "FIDO:/162870791865632382552704231438327900152302540348097243854039966655366469794954476"
    "199158014113179232779520163209900691930075274801398564434658077048963842109321447142660"
)
_RNG = random.Random(20240601)
RANDOM_URLS = [
    "FIDO:/" + "".join(_RNG.choice("0123456789") for _ in range(n)) for n in (150, 171, 199, 220)
]
URLS = [CHROME_URL, *RANDOM_URLS]

WHITE, BLACK = 255, 0
CELL_W = 6  # pixels per character column; a character cell is twice as tall as wide
TERMINAL_MARGIN = 3  # character cells of plain terminal background around the code


def terminal_to_image(text: str, *, dark_terminal: bool, ascii_only: bool) -> Image.Image:
    """Paint text as a terminal would: each half block's ink in the text colour."""
    ink, background = (WHITE, BLACK) if dark_terminal else (BLACK, WHITE)
    lines = text.splitlines()
    columns = max(len(line) for line in lines)
    margin = TERMINAL_MARGIN * CELL_W
    image = Image.new(
        "L",
        (columns * CELL_W + 2 * margin, len(lines) * 2 * CELL_W + 2 * margin),
        background,
    )
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        top = margin + row * 2 * CELL_W
        for col, char in enumerate(line):
            left = margin + col * CELL_W
            right = left + CELL_W - 1
            if char in "▀█" or (ascii_only and char == "#"):
                draw.rectangle((left, top, right, top + CELL_W - 1), fill=ink)
            if char in "▄█" or (ascii_only and char == "#"):
                draw.rectangle((left, top + CELL_W, right, top + 2 * CELL_W - 1), fill=ink)
    return image


def decode_image(image: Image.Image, path: Path) -> str:
    image.save(path)
    return decode_qr_image(path, timeout=5)


def matrix(url: str) -> list[list[bool]]:
    return [[bool(m) for m in row] for row in make_qr(url).modules]


def test_digits_are_encoded_in_numeric_mode_at_level_l() -> None:
    qr = make_qr(CHROME_URL)
    assert [chunk.mode for chunk in qr.data_list] == [
        qr_util.MODE_ALPHA_NUM,
        qr_util.MODE_NUMBER,
    ]
    assert qr.error_correction == 1  # qrcode's ERROR_CORRECT_L
    assert qr.version == 4  # 33 x 33 modules for the 168-digit Chrome URL
    assert len(qr.modules) == 33
    assert all(make_qr(url).version <= 5 for url in RANDOM_URLS)


def test_lower_case_prefix_keeps_its_bytes() -> None:
    qr = make_qr("fido:/" + CHROME_URL[6:])
    assert qr.data_list[0].mode == qr_util.MODE_8BIT_BYTE
    assert qr.data_list[0].data == b"fido:/"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "FIDO:/",
        "https://example.com/",
        "FIDO:/12a3",
        "FIDO:/123\n",
        "FIDO:/١٢٣",  # Arabic-Indic digits are not ASCII digits
        " FIDO:/123",
        b"FIDO:/123",
    ],
)
def test_bad_urls_are_refused_without_echoing_them(bad: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        make_qr(bad)  # type: ignore[arg-type]
    assert caught.value.reason is ProtocolReason.MALFORMED
    if isinstance(bad, str) and len(bad) > 8:
        assert bad not in str(caught.value)


def test_url_too_long_for_any_qr_version() -> None:
    with pytest.raises(ProtocolError) as caught:
        make_qr("FIDO:/" + "1" * 8000)
    assert caught.value.reason is ProtocolReason.MALFORMED


@pytest.mark.parametrize("url", URLS)
def test_png_round_trips_through_zbar(url: str, tmp_path: Path) -> None:
    target = tmp_path / "qr.png"
    write_png(url, target)
    assert decode_qr_image(target, timeout=5) == url
    with Image.open(target) as image:
        assert image.size == ((len(matrix(url)) + 8) * 8,) * 2


def test_png_scale_and_lower_case_prefix(tmp_path: Path) -> None:
    url = "fido:/" + RANDOM_URLS[0][6:]
    write_png(url, tmp_path / "small.png", scale=3)
    assert decode_qr_image(tmp_path / "small.png", timeout=5) == url


@pytest.mark.parametrize("scale", [0, -1, 101, 2.5, True])
def test_png_bad_scale(scale: object, tmp_path: Path) -> None:
    with pytest.raises(QrRenderError) as caught:
        write_png(CHROME_URL, tmp_path / "x.png", scale=scale)  # type: ignore[arg-type]
    assert caught.value.problem is RenderProblem.BAD_SCALE
    assert not (tmp_path / "x.png").exists()


def test_png_without_pillow_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "PIL.Image", None)  # as if Pillow were not installed
    with pytest.raises(QrRenderError) as caught:
        write_png(CHROME_URL, tmp_path / "x.png")
    assert caught.value.problem is RenderProblem.NO_PILLOW
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("writer", [write_png, write_svg])
def test_unwritable_path(writer: object, tmp_path: Path) -> None:
    with pytest.raises(QrRenderError) as caught:
        writer(CHROME_URL, tmp_path / "missing" / "qr.out")  # type: ignore[operator]
    assert isinstance(caught.value, HybridError)
    assert caught.value.problem is RenderProblem.CANNOT_WRITE


@pytest.mark.parametrize(("writer", "name"), [(write_png, "qr.png"), (write_svg, "qr.svg")])
def test_files_are_private_whatever_the_umask_or_an_old_file(
    writer: object, name: str, tmp_path: Path
) -> None:
    """The code holds the sign-in's secret: 0600, even over a world-readable file."""
    target = tmp_path / name
    target.write_bytes(b"old")
    target.chmod(0o644)
    previous = os.umask(0o000)
    try:
        writer(CHROME_URL, target)  # type: ignore[operator]
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == [name]  # no temporary file left behind
    (tmp_path / "fresh").mkdir()
    fresh = tmp_path / "fresh" / name
    writer(CHROME_URL, fresh)  # type: ignore[operator]
    assert target.read_bytes() == fresh.read_bytes()  # the whole code, not the old bytes


@pytest.mark.parametrize("writer", [write_png, write_svg])
def test_a_symlink_is_refused_not_followed(writer: object, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "qr.out"
    link.symlink_to(victim)
    with pytest.raises(QrRenderError) as caught:
        writer(CHROME_URL, link)  # type: ignore[operator]
    assert caught.value.problem is RenderProblem.SYMLINK
    assert victim.read_text() == "keep me" and link.is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["qr.out", "victim.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    """Replaced in one rename: a reader sees the old code or the new one, never half."""
    target = tmp_path / "qr.png"
    write_png(CHROME_URL, target)
    before = target.read_bytes()
    with pytest.raises(QrRenderError):
        write_png(RANDOM_URLS[0], target, scale=0)
    assert target.read_bytes() == before

    def broken(stream: object) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(QrRenderError) as caught:
        render._save(target, "PNG", broken)
    assert caught.value.problem is RenderProblem.CANNOT_WRITE
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["qr.png"]


_SQUARE = re.compile(r"M(\d+),(\d+)H(\d+)V(\d+)H(\d+)z")


@pytest.mark.parametrize("url", URLS)
def test_svg_is_well_formed_and_round_trips(url: str, tmp_path: Path) -> None:
    target = tmp_path / "qr.svg"
    write_svg(url, target)
    root = ET.parse(target).getroot()
    modules = matrix(url)
    size = len(modules) + 8  # 4-module quiet zone each side
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == f"0 0 {size} {size}"
    background = root.find("{http://www.w3.org/2000/svg}rect")
    assert background is not None and background.get("fill") == "white"
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    squares = _SQUARE.findall(path.get("d", ""))
    assert len(squares) == path.get("d", "").count("z")  # every subpath is one unit square
    dark = set()
    for x0, y0, x1, y1, x2 in squares:
        assert (int(x1) - int(x0), int(y1) - int(y0), x2) == (1, 1, x0)
        dark.add((int(y0) - 4, int(x0) - 4))
    expected = {(r, c) for r, row in enumerate(modules) for c, on in enumerate(row) if on}
    assert dark == expected

    # zbar's SVG support depends on ImageMagick's optional delegates: rasterise it ourselves.
    scale = 6
    image = Image.new("L", (size * scale, size * scale), WHITE)
    draw = ImageDraw.Draw(image)
    for row, col in dark:
        x, y = (col + 4) * scale, (row + 4) * scale
        draw.rectangle((x, y, x + scale - 1, y + scale - 1), fill=BLACK)
    assert decode_image(image, tmp_path / "svg.png") == url


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("invert", [False, True])
def test_terminal_half_blocks_scan(url: str, invert: bool, tmp_path: Path) -> None:
    text = render_terminal(url, invert=invert)
    lines = text.splitlines()
    size = len(matrix(url)) + 8
    assert text.endswith("\n")
    assert set(text) <= set(" ▀▄█\n")
    assert {len(line) for line in lines} == {size}
    assert len(lines) == (size + 1) // 2
    # invert=False is meant for dark-on-light terminals, invert=True for light-on-dark ones.
    image = terminal_to_image(text, dark_terminal=invert, ascii_only=False)
    assert decode_image(image, tmp_path / "terminal.png") == url


@pytest.mark.parametrize("invert", [False, True])
def test_terminal_polarity(invert: bool) -> None:
    """Whichever the terminal, the phone must see a light quiet zone and dark finders."""
    image = terminal_to_image(
        render_terminal(CHROME_URL, invert=invert), dark_terminal=invert, ascii_only=False
    )
    origin = TERMINAL_MARGIN * CELL_W
    quiet = image.getpixel((origin + CELL_W // 2, origin + CELL_W // 2))
    finder_corner = image.getpixel((origin + 4 * CELL_W + 1, origin + 4 * CELL_W + 1))
    assert (quiet, finder_corner) == (WHITE, BLACK)


@pytest.mark.parametrize("invert", [False, True])
def test_terminal_ascii_only_scans(invert: bool, tmp_path: Path) -> None:
    text = render_terminal(CHROME_URL, invert=invert, ascii_only=True)
    lines = text.splitlines()
    assert set(text) <= set(" #\n")
    assert len(lines) == 41
    assert {len(line) for line in lines} == {82}
    image = terminal_to_image(text, dark_terminal=invert, ascii_only=True)
    assert decode_image(image, tmp_path / "ascii.png") == CHROME_URL


def test_terminal_fits_80x24_for_168_digits() -> None:
    lines = render_terminal(CHROME_URL).splitlines()
    assert (max(map(len, lines)), len(lines)) == (41, 21)
    widest = RANDOM_URLS[-1]  # 220 digits, version 5
    lines = render_terminal(widest).splitlines()
    assert (max(map(len, lines)), len(lines)) == (45, 23)


@pytest.mark.parametrize("invert", [False, True])
def test_terminal_two_module_quiet_zone_scans(invert: bool, tmp_path: Path) -> None:
    text = render_terminal(CHROME_URL, invert=invert, quiet_zone=2)
    lines = text.splitlines()
    assert (len(lines[0]), len(lines)) == (37, 19)
    image = terminal_to_image(text, dark_terminal=invert, ascii_only=False)
    assert decode_image(image, tmp_path / "tight.png") == CHROME_URL


@pytest.mark.parametrize("quiet_zone", [0, 1, 17])
def test_terminal_quiet_zone_limits(quiet_zone: int) -> None:
    with pytest.raises(QrRenderError) as caught:
        render_terminal(CHROME_URL, quiet_zone=quiet_zone)
    assert caught.value.problem is RenderProblem.BAD_QUIET_ZONE


def test_terminal_refuses_bad_url() -> None:
    with pytest.raises(ProtocolError):
        render_terminal("FIDO:/not-digits")
