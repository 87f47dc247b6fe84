"""Read the text of a QR code from a photo or screenshot, with zbar's ``zbarimg`` program.

zbar is a program rather than a Python dependency so that the phone role needs no native
build; any image format ImageMagick reads (PNG, JPEG, ...) works. zbar returns alphanumeric
segments in upper case, as they were encoded, and with ``--raw`` does no charset guessing, so
the ``FIDO:/`` URLs drawn by ``hybrid.qr.render`` come back byte for byte.
"""

from __future__ import annotations

import enum
import os
import shutil
import subprocess
from pathlib import Path
from typing import Final

from hybrid.errors import HybridError

ZBARIMG: Final = "zbarimg"
DEFAULT_TIMEOUT: Final = 10.0
#: zbarimg's exit status when it read the image but found no code.
_EXIT_NO_SYMBOL: Final = 4
_PROBE_TIMEOUT: Final = 5.0
_NODBUS_SUPPORT: dict[str, bool] = {}
_INSTALL_ADVICE: Final = (
    "install zbar-tools: sudo apt-get install zbar-tools (macOS: brew install zbar), "
    "or type the FIDO:/ URL instead of giving an image"
)


class QrImageError(HybridError):
    """A QR code could not be read from an image file; ``path`` is the file (or program)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class ZbarNotInstalled(QrImageError):
    """The ``zbarimg`` program (``path``) is not installed or cannot be run."""


class UnreadableReason(enum.Enum):
    """Why an image file could not be read (``QrImageUnreadable.reason``)."""

    MISSING = "missing"
    FOLDER = "folder"
    NO_ACCESS = "no_access"
    NOT_AN_IMAGE = "not_an_image"


class QrImageUnreadable(QrImageError):
    """The image file is missing, unreadable or not in an image format zbar knows."""

    def __init__(self, message: str, *, path: str | None, reason: UnreadableReason) -> None:
        self.reason = reason
        super().__init__(message, path=path)


class NoQrCodeFound(QrImageError):
    """The image was read but holds no QR code that zbar could decode as text."""


class QrDecodeTimeout(QrImageError, TimeoutError):
    """zbarimg took longer than ``seconds`` (usually a very large image)."""

    def __init__(self, message: str, *, path: str | None, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(message, path=path)


def decode_qr_image(
    path: str | os.PathLike[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    zbarimg: str = ZBARIMG,
) -> str:
    """Return the text of the first QR code zbar finds in the image at ``path``.

    Other barcode types are ignored. ``timeout`` bounds the whole zbarimg run, after which it
    is killed; ``zbarimg`` names the program (a path or a name looked up on PATH).
    """
    image = Path(path)
    _check_readable(image)
    program = shutil.which(zbarimg)
    if program is None:
        raise ZbarNotInstalled(
            f"Cannot read QR images: {zbarimg!r} was not found; {_INSTALL_ADVICE}.", path=zbarimg
        )
    args = [program, "--raw", "--quiet", "--oneshot", "-Sdisable", "-Sqrcode.enable"]
    if supports_nodbus(program, timeout):
        # Otherwise zbar broadcasts what it decoded (here, the QR secret) on the system D-Bus.
        args.append("--nodbus")
    # An absolute path, so that a file name starting with '-' is not taken for an option.
    args.append(str(image.absolute()))
    try:
        done = subprocess.run(
            args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise QrDecodeTimeout(
            f"Reading the QR code in {str(image)!r} took longer than {timeout:g} s: use a "
            "smaller image, e.g. a screenshot or a photo cropped to the code.",
            path=str(image),
            seconds=timeout,
        ) from exc
    except OSError as exc:
        raise ZbarNotInstalled(
            f"Cannot run {program!r} ({exc.strerror or exc}); {_INSTALL_ADVICE}.", path=program
        ) from exc

    if done.returncode == _EXIT_NO_SYMBOL or (done.returncode == 0 and not done.stdout):
        raise NoQrCodeFound(
            f"No QR code found in {str(image)!r}: use a sharp, evenly lit photo or a screenshot "
            "with the whole code in view, including the light border around it.",
            path=str(image),
        )
    if done.returncode != 0:
        raise QrImageUnreadable(
            f"zbarimg could not read {str(image)!r} ({_zbar_error(done.stderr)}): give a PNG "
            "or JPEG image of the QR code.",
            path=str(image),
            reason=UnreadableReason.NOT_AN_IMAGE,
        )
    # zbar's QR decoder already hands out UTF-8 (byte segments are converted from their
    # guessed charset), so "replace" only guards against a zbar build that does not.
    return done.stdout.removesuffix(b"\n").decode("utf-8", "replace")


def _check_readable(image: Path) -> None:
    """Fail early with a precise reason; zbarimg's own messages are ImageMagick's."""
    try:
        with image.open("rb") as stream:
            stream.read(1)
    except FileNotFoundError as exc:
        raise QrImageUnreadable(
            f"No image file {str(image)!r}: check the path of the QR code picture.",
            path=str(image),
            reason=UnreadableReason.MISSING,
        ) from exc
    except IsADirectoryError as exc:
        raise QrImageUnreadable(
            f"{str(image)!r} is a folder, not an image: give the path of the QR code picture.",
            path=str(image),
            reason=UnreadableReason.FOLDER,
        ) from exc
    except OSError as exc:
        raise QrImageUnreadable(
            f"Cannot read {str(image)!r} ({exc.strerror or exc}): check that the file exists "
            "and that you may read it.",
            path=str(image),
            reason=UnreadableReason.NO_ACCESS,
        ) from exc


def supports_nodbus(program: str, timeout: float) -> bool:
    """Whether this zbarimg has ``--nodbus`` (recent builds with D-Bus support do)."""
    known = _NODBUS_SUPPORT.get(program)
    if known is not None:
        return known
    try:
        done = subprocess.run(
            [program, "--help"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=min(timeout, _PROBE_TIMEOUT),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False  # not remembered: the next call probes again
    _NODBUS_SUPPORT[program] = b"--nodbus" in done.stdout + done.stderr
    return _NODBUS_SUPPORT[program]


def _zbar_error(stderr: bytes) -> str:
    """The first ``ERROR:`` line zbarimg printed, shortened; it names the file, not its data."""
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("ERROR:"):
            text = line.removeprefix("ERROR:").strip()
            return text if len(text) <= 160 else text[:157] + "..."
    return "unknown error"
