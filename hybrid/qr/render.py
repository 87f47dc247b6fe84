"""Draw a ``FIDO:/`` URL as a QR code: in a terminal, as a PNG file or as an SVG file.

The URL is encoded in two segments, ``FIDO:/`` in alphanumeric mode and the digits in numeric
mode (10 bits per 3 digits), at error correction level L. A 168-digit URL then fits version 4
(33 x 33 modules); one alphanumeric segment (11 bits per 2 characters) needs version 6, and
qrcode's default split needs version 5 from 170 digits on. A smaller symbol has bigger modules
on the same screen, which is what makes a terminal code scannable; level L suffices for a code
on a screen, which is never torn or smudged.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final

import qrcode
from qrcode import constants as qr_constants
from qrcode import util as qr_util
from qrcode.exceptions import DataOverflowError
from qrcode.image.svg import SvgPathFillImage

from hybrid.errors import HybridError, ProtocolError
from hybrid.protocol.constants import QR_PREFIX

ERROR_CORRECTION: Final = qr_constants.ERROR_CORRECT_L
#: The quiet zone ISO/IEC 18004 asks for; used for files and, by default, for terminals.
QUIET_ZONE: Final = 4
#: Phone scanners still find a code with two light modules around it; less is unreliable.
MIN_QUIET_ZONE: Final = 2
DEFAULT_PNG_SCALE: Final = 8
MAX_PNG_SCALE: Final = 100

# Prefix compared case-insensitively, as Chromium and kanidm parse it; ASCII digits only
# (``\d`` would also accept other scripts' digits, which QR numeric mode cannot hold).
_URL_RE: Final = re.compile(r"(?P<prefix>(?i:fido:/))(?P<digits>[0-9]+)")

# (top module inked, bottom module inked) -> character; the ink is the terminal's text colour.
_HALF_BLOCKS: Final = {
    (False, False): " ",
    (True, False): "▀",
    (False, True): "▄",
    (True, True): "█",
}
_ASCII_MODULES: Final = {False: "  ", True: "##"}


class RenderProblem(enum.Enum):
    """What stopped a QR code from being drawn or written (``QrRenderError.problem``)."""

    BAD_QUIET_ZONE = "bad_quiet_zone"
    BAD_SCALE = "bad_scale"
    NO_PILLOW = "no_pillow"
    CANNOT_WRITE = "cannot_write"
    SYMLINK = "symlink"  # the path names a symbolic link, which is never written through


class QrRenderError(HybridError):
    """A QR code could not be drawn or written (bad option, missing Pillow, unwritable file)."""

    def __init__(self, message: str, problem: RenderProblem) -> None:
        self.problem = problem
        super().__init__(message)


def make_qr(url: str) -> qrcode.QRCode:
    """Return a built ``qrcode.QRCode`` for ``url``, encoded in the fewest modules.

    ``url`` must be ``FIDO:/`` (any case) followed by ASCII digits. The returned object has the
    standard 4-module border and box size 10; its ``modules`` matrix excludes the border.
    """
    match = _URL_RE.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        raise ProtocolError(
            f"Cannot draw {_describe(url)} as a hybrid QR code: expected '{QR_PREFIX}' followed "
            "by digits. Pass the URL made for this sign-in, unchanged."
        )
    prefix = match["prefix"].encode("ascii")
    # Alphanumeric mode has no lower case: a lower-case prefix keeps its exact bytes instead.
    prefix_mode = qr_util.MODE_ALPHA_NUM if prefix.isupper() else qr_util.MODE_8BIT_BYTE
    qr = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=QUIET_ZONE)
    qr.add_data(qr_util.QRData(prefix, mode=prefix_mode, check_data=False))
    qr.add_data(qr_util.QRData(match["digits"].encode("ascii"), mode=qr_util.MODE_NUMBER))
    try:
        qr.make(fit=True)
    except (DataOverflowError, ValueError) as exc:  # qrcode 8 raises either past version 40
        raise ProtocolError(
            f"The URL is too long for a QR code ({len(url)} characters): a hybrid QR URL has "
            "about 150-250 digits; pass the URL made for this sign-in, unchanged."
        ) from exc
    return qr


def render_terminal(
    url: str,
    *,
    invert: bool = False,
    ascii_only: bool = False,
    quiet_zone: int = QUIET_ZONE,
) -> str:
    """Return ``url`` as a QR code made of text, each line ending in a newline.

    The characters are drawn in the terminal's text colour ("ink") on its background:
    - ``invert=False`` inks the dark modules: right for dark text on a light background.
    - ``invert=True`` inks the light modules and the quiet zone: right for light text on a dark
      background (most terminals' default). Either way the phone sees dark modules on light.

    Normally each line holds two module rows as Unicode half blocks (one column per module, so
    modules come out square in a 1:2 character cell): a 168-digit URL takes 41 columns x 21
    lines. ``ascii_only`` uses "##" per inked module and one line per row, for terminals
    without Unicode; it is twice as tall.
    """
    if not MIN_QUIET_ZONE <= quiet_zone <= QUIET_ZONE * 4:
        raise QrRenderError(
            f"quiet_zone={quiet_zone} cannot be drawn: use {MIN_QUIET_ZONE} to "
            f"{QUIET_ZONE * 4} modules ({QUIET_ZONE} is the standard).",
            RenderProblem.BAD_QUIET_ZONE,
        )
    modules: list[list[bool]] = [[bool(m) for m in row] for row in make_qr(url).modules]
    count = len(modules)
    size = count + 2 * quiet_zone

    def inked(row: int, col: int) -> bool:
        # Anything outside the symbol, including a padding half row, is a light module.
        r, c = row - quiet_zone, col - quiet_zone
        dark = 0 <= r < count and 0 <= c < count and modules[r][c]
        return dark != invert

    lines: list[str] = []
    if ascii_only:
        for row in range(size):
            lines.append("".join(_ASCII_MODULES[inked(row, col)] for col in range(size)))
    else:
        for row in range(0, size, 2):
            lines.append(
                "".join(_HALF_BLOCKS[inked(row, col), inked(row + 1, col)] for col in range(size))
            )
    return "\n".join(lines) + "\n"


def write_png(url: str, path: str | os.PathLike[str], *, scale: int = DEFAULT_PNG_SCALE) -> None:
    """Write ``url`` as a black-on-white PNG with ``scale`` pixels per module (needs Pillow).

    Pillow is used rather than a second PNG library so that no extra dependency is added:
    it is in this project's ``dev`` extra and in most Python installations that handle images.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= MAX_PNG_SCALE:
        raise QrRenderError(
            f"PNG scale {scale!r} is not usable: give a whole number of pixels per module "
            f"from 1 to {MAX_PNG_SCALE} (the default, {DEFAULT_PNG_SCALE}, suits a screen).",
            RenderProblem.BAD_SCALE,
        )
    qr = make_qr(url)
    qr.box_size = scale
    image = qr.make_image(image_factory=_pillow_factory())
    _save(path, "PNG", lambda stream: image.save(stream, format="PNG"))


def write_svg(url: str, path: str | os.PathLike[str]) -> None:
    """Write ``url`` as a standalone SVG: one path on a white background, 1 mm per module.

    The white background is drawn on purpose: without it a dark-mode viewer would show the
    code dark-on-dark.
    """
    image = make_qr(url).make_image(image_factory=SvgPathFillImage)
    _save(path, "SVG", image.save)


def _pillow_factory() -> Any:
    try:
        importlib.import_module("PIL.Image")
    except ImportError as exc:
        raise QrRenderError(
            "Writing a PNG needs the Pillow package: pip install pillow (or write an SVG file, "
            "or show the code in the terminal, which need nothing extra).",
            RenderProblem.NO_PILLOW,
        ) from exc
    from qrcode.image.pil import PilImage

    return PilImage


def _save(path: str | os.PathLike[str], kind: str, write: Callable[[IO[bytes]], object]) -> None:
    """Write a QR image privately: it holds the sign-in's secret.

    The bytes go to a new 0600 file beside `path` (`mkstemp`: O_EXCL | O_NOFOLLOW), which
    then replaces `path` in one rename: no other user can read it, a symlink planted at
    `path` is refused rather than followed, and a reader never sees half a file.
    """
    target = Path(path)
    if target.is_symlink():
        raise QrRenderError(
            f"Will not write the {kind} QR code to {str(target)!r}: it is a symbolic link, "
            "and the code holds this sign-in's secret. Give the path of a regular file.",
            RenderProblem.SYMLINK,
        )
    temporary: str | None = None
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
        temporary = None
    except OSError as exc:
        raise QrRenderError(
            f"Cannot write the {kind} QR code to {str(target)!r} ({exc.strerror or exc}): "
            "choose a path in an existing folder you can write to.",
            RenderProblem.CANNOT_WRITE,
        ) from exc
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _describe(value: object) -> str:
    # Never echo the text: a nearly valid URL holds the QR secret.
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    return f"this {len(value)}-character text"
