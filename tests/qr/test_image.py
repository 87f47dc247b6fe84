"""Read QR codes from real image files with the real zbarimg program."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import qrcode
from PIL import Image

from hybrid.errors import HybridError
from hybrid.qr import decode_qr_image, write_png
from hybrid.qr.image import (
    NoQrCodeFound,
    QrDecodeTimeout,
    QrImageError,
    QrImageUnreadable,
    UnreadableReason,
    ZbarNotInstalled,
)

URL = (
    "FIDO:/162870791865632382552704231438327900152302540348097243854039966655366469794954476"
    "199158014113179232779520163209900691930075274801398564434658077048963842109321447142660"
)


@pytest.fixture
def qr_png(tmp_path: Path) -> Path:
    path = tmp_path / "qr.png"
    write_png(URL, path, scale=4)
    return path


def test_png_gives_the_exact_url(qr_png: Path) -> None:
    assert decode_qr_image(qr_png, timeout=5) == URL
    assert decode_qr_image(str(qr_png), timeout=5) == URL


def test_photo_like_jpeg(qr_png: Path, tmp_path: Path) -> None:
    """A grey, off-centre, slightly rotated, lossy copy, as a phone screenshot might be."""
    with Image.open(qr_png) as code:
        rotated = code.convert("L").rotate(7, expand=True, fillcolor=255)
    photo = Image.new("L", (rotated.width + 300, rotated.height + 200), 140)
    photo.paste(rotated, (220, 60))
    target = tmp_path / "photo.jpg"
    photo.save(target, quality=70)
    assert decode_qr_image(target, timeout=5) == URL


def test_lower_case_and_other_text_come_back_unchanged(tmp_path: Path) -> None:
    for text in ("fido:/123456789012", "hello, World\twith tab"):
        target = tmp_path / "text.png"
        qrcode.make(text).save(target)
        assert decode_qr_image(target, timeout=5) == text


def test_name_starting_with_dash(
    qr_png: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(qr_png, tmp_path / "-q.png")
    monkeypatch.chdir(tmp_path)
    assert decode_qr_image("-q.png", timeout=5) == URL


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(QrImageUnreadable) as caught:
        decode_qr_image(tmp_path / "nope.png", timeout=5)
    assert caught.value.reason is UnreadableReason.MISSING
    assert caught.value.path == str(tmp_path / "nope.png")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(QrImageUnreadable) as caught:
        decode_qr_image(tmp_path, timeout=5)
    assert caught.value.reason is UnreadableReason.FOLDER


def test_not_an_image(tmp_path: Path) -> None:
    target = tmp_path / "notes.png"
    target.write_text("not a picture\n")
    with pytest.raises(QrImageUnreadable) as caught:
        decode_qr_image(target, timeout=5)
    assert isinstance(caught.value, HybridError)
    assert caught.value.reason is UnreadableReason.NOT_AN_IMAGE


def test_image_without_code(tmp_path: Path) -> None:
    target = tmp_path / "blank.png"
    Image.new("L", (200, 120), 255).save(target)
    with pytest.raises(NoQrCodeFound) as caught:
        decode_qr_image(target, timeout=5)
    assert caught.value.path == str(target)


def test_zbar_not_installed(qr_png: Path) -> None:
    with pytest.raises(ZbarNotInstalled) as caught:
        decode_qr_image(qr_png, zbarimg="zbarimg-that-is-not-installed")
    assert isinstance(caught.value, QrImageError)
    assert caught.value.path == "zbarimg-that-is-not-installed"


def test_zbar_that_cannot_run(qr_png: Path, tmp_path: Path) -> None:
    fake = tmp_path / "zbarimg"
    fake.write_bytes(b"\x7fELF not really a program")
    fake.chmod(0o755)
    with pytest.raises(ZbarNotInstalled) as caught:
        decode_qr_image(qr_png, zbarimg=os.fspath(fake), timeout=5)
    assert caught.value.path == os.fspath(fake)


def test_timeout_kills_zbar(tmp_path: Path) -> None:
    target = tmp_path / "big.png"
    Image.new("L", (4000, 4000), 255).save(target)
    with pytest.raises(QrDecodeTimeout) as caught:
        decode_qr_image(target, timeout=0.001)
    assert isinstance(caught.value, TimeoutError)
    assert (caught.value.path, caught.value.seconds) == (str(target), 0.001)


def test_zbar_is_told_not_to_broadcast_the_secret_on_dbus() -> None:
    from hybrid.qr.image import supports_nodbus

    program = shutil.which("zbarimg")
    assert program is not None
    # zbar-tools 0.23.92 (Debian 12) has --nodbus; without it zbar signals what it decoded.
    assert supports_nodbus(program, 5.0)
