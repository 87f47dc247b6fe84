"""The phone CLI's y/N prompt and its input: presence only, printable peer text, stdin handling."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
import threading

import pytest
from fido2 import cbor

from hybrid.authenticator import SoftwareAuthenticator
from hybrid.authenticator.approval import ApprovalRequest
from hybrid.cli.common import PrintableFormatter
from hybrid.cli.phone import url_from_stdin
from hybrid.cli.prompt import TerminalApprover, prompt_text, read_line
from hybrid.ctap import CtapCommand, CtapStatus, MakeCredentialKey
from tests.cli.phone_cli import qr_url
from tunnel_server.testing import wait_until

pytestmark = pytest.mark.usefixtures("data_home")  # the default store stays out of $HOME


def test_prompts_name_the_site_and_account_and_defuse_escapes() -> None:
    assert prompt_text(ApprovalRequest("get", "example.com", "alice", "Alice")) == (
        "Sign in to example.com as alice? [y/N] "
    )
    assert prompt_text(ApprovalRequest("create", "example.com", None, "Alice")) == (
        "Create a passkey for Alice on example.com? [y/N] "
    )
    assert "no passkey" in prompt_text(ApprovalRequest("get", "example.com", None, None))
    hostile = prompt_text(ApprovalRequest("create", "evil\x1b]0;x\x07.com", "a" * 500, None))
    assert "\x1b" not in hostile and "\x07" not in hostile and len(hostile) < 220


async def test_read_line_from_a_pipe_and_at_end_of_input() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as reader:
        os.write(write_fd, b"yes\nmore")
        assert await read_line(reader) == "yes\n"  # stops at the line's end
        os.close(write_fd)
        assert await read_line(reader) == "more"
        assert await read_line(reader) == ""


async def test_an_unanswered_prompt_does_not_hold_up_the_loop() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as reader:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(read_line(reader), 0.05)  # what a ceremony timeout does
        os.close(write_fd)  # the abandoned reader thread then sees end of input and ends
        await wait_until(
            lambda: not any(t.name == "approval-prompt" for t in threading.enumerate()),
            2,
            "the prompt thread to end",
        )


async def test_yes_approves_without_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    approver = TerminalApprover(assume_yes=True)
    assert await approver(ApprovalRequest("get", "example.com", "alice", None)) is True
    assert approver.rp_id == "example.com" and sys.stdin.read() == "n\n"


async def test_the_terminal_never_passes_for_user_verification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A y/N is presence: a request needing verification is declined, not asked, not assumed."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    request = ApprovalRequest("get", "example.com", "alice", None, user_verification=True)
    for assume_yes in (True, False):
        assert await TerminalApprover(assume_yes)(request) is False
    assert sys.stdin.read() == "y\n"  # nothing was read


async def test_a_hostile_site_and_account_name_reach_the_prompt_and_log_printable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The desktop chooses the rpId and user name the phone's prompt and log show."""
    caplog.set_level(logging.DEBUG, logger="hybrid")
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    phone = SoftwareAuthenticator(approve=TerminalApprover(False))
    request = {
        MakeCredentialKey.CLIENT_DATA_HASH: bytes(32),
        MakeCredentialKey.RP: {"id": "\x1b[2Jevil.example\u202e", "name": "x"},
        MakeCredentialKey.USER: {"id": b"u", "name": "alice\x1b[8m", "displayName": "A"},
        MakeCredentialKey.PUB_KEY_CRED_PARAMS: [{"type": "public-key", "alg": -7}],
    }
    reply = await phone.handle_ctap(bytes([CtapCommand.MAKE_CREDENTIAL]) + cbor.encode(request))
    assert reply[0] == CtapStatus.SUCCESS
    err = capsys.readouterr().err
    assert "Create a passkey for alice?[8m on ?[2Jevil.example?? [y/N] " in err
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "?[2Jevil.example?" in logged
    for text in (err, logged):
        assert "\x1b" not in text and "\u202e" not in text


def test_cli_log_lines_are_printable() -> None:
    try:
        raise ValueError("peer said \x1b[2J\u202e")
    except ValueError:
        record = logging.LogRecord(
            "hybrid", logging.WARNING, __file__, 1, "got %s", ("\x9b31m",), sys.exc_info()
        )
    line = PrintableFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert line.startswith("WARNING hybrid: got ?31m\nTraceback")
    assert "ValueError: peer said ?[2J?" in line
    assert not any(c in line for c in "\x1b\u202e\x9b")


async def test_a_terminal_is_asked_for_the_qr_text_and_a_pipe_is_not() -> None:
    url = qr_url()
    for opener in (os.openpty, os.pipe):
        reader_fd, writer_fd = opener()
        err = io.StringIO()
        with os.fdopen(reader_fd) as stdin:
            os.write(writer_fd, f"  {url}\ny\n".encode())
            assert await url_from_stdin(stdin, err) == url
            assert (await read_line(stdin)).strip() == "y"  # left for the approval prompt
        os.close(writer_fd)
        asked = err.getvalue()
        assert (asked.endswith(": ") and url not in asked) if opener is os.openpty else asked == ""
