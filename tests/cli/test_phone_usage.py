"""`python -m hybrid.authenticator`: usage and store errors, their exit codes, --help."""

from __future__ import annotations

import io
import stat
import sys
from pathlib import Path

import pytest

from hybrid.cli.common import EXIT_USAGE
from hybrid.cli.phone import EXIT_STORE, default_store_path, main, open_store
from tests.cli.phone_cli import qr_url

pytestmark = pytest.mark.usefixtures("data_home")  # the default store stays out of $HOME


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["https://example.com/"], "must start with FIDO:/"),
        (["FIDO:/12x"], "Copy the whole FIDO:/ text again"),
        (["FIDO:/"], "empty"),
        ([qr_url(), "--qr-image", "qr.png"], "not allowed with"),
        ([], "one of the arguments"),
        (["--qr-image", "/nonexistent/qr.png"], "No image file"),
        ([qr_url(), "--tunnel-url", "http://example.com/x"], "Bad --tunnel-url"),
        ([qr_url(), "--timeout", "0"], "positive number of seconds"),
        ([qr_url(), "--timeout", "nan"], "positive number of seconds"),
        ([qr_url(), "--advertiser", "carrier-pigeon"], "is not an advertiser"),
        ([qr_url(), "--advertiser", "bumble:"], "is not an advertiser"),
        ([qr_url(), "--advertiser", "bluez:hci 0"], "not a Bluetooth adapter name"),
    ],
)
def test_usage_errors_are_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--store", ":memory:"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert message in err and out == ""
    assert "Traceback" not in err


@pytest.mark.parametrize("stdin", ["", "\n", "  \n"])
def test_no_qr_text_on_stdin_is_exit_2(stdin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main(["-", "--store", ":memory:"]) == EXIT_USAGE


def test_image_without_a_qr_code_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "blank.png"
    image.write_bytes(b"not a picture")
    assert main(["--qr-image", str(image), "--store", ":memory:"]) == EXIT_USAGE
    assert "error: " in capsys.readouterr().err


def test_verbose_errors_carry_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["FIDO:/12x", "--store", ":memory:", "-v"]) == EXIT_USAGE
    assert "Traceback" in capsys.readouterr().err


def test_damaged_store_is_exit_5_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "passkeys.json"
    store.write_text("{not json")
    assert main([qr_url(), "--store", str(store)]) == EXIT_STORE
    assert "is damaged" in capsys.readouterr().err
    assert store.read_text() == "{not json"


def test_store_in_a_missing_folder_is_exit_5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([qr_url(), "--store", str(tmp_path / "nope" / "s.json")]) == EXIT_STORE
    assert "does not exist: create it" in capsys.readouterr().err


def test_default_store_follows_xdg_and_is_private(
    data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = data_home / "fido-hybrid" / "credentials.json"
    assert default_store_path() == path
    assert open_store(None).path == path
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # the XDG spec says: ignore it
    assert default_store_path() == Path.home() / ".local/share/fido-hybrid/credentials.json"
    assert open_store(":memory:").path is None


def test_help_runs_as_a_subprocess() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "hybrid.authenticator", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for text in (
        "--qr-image",
        "--tunnel-url",
        "--store",
        "--advertiser",
        "--yes",
        "--link",
        "--timeout",
        "--name",
        "--verbose",
        "FIDO:/...|-",
        "presence only",
        "exit codes:",
        "130",
    ):
        assert text in done.stdout
