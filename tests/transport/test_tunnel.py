"""The tunnel client and the shared driver helpers, against a real tunnel server on loopback."""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from hybrid.authenticator import SoftwareAuthenticator, answer_qr, approve_all
from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.cli.common import report
from hybrid.errors import (
    CeremonyTimeout,
    PeerError,
    PeerReason,
    ProtocolError,
    ProtocolReason,
    TunnelError,
)
from hybrid.protocol import QRCode
from hybrid.protocol.constants import CABLE_WEBSOCKET_PROTOCOL
from hybrid.transport import PHONE, peer_failures, time_limit
from hybrid.tunnel import Tunnel, TunnelClosed, plaintext_warning
from tunnel_server import TunnelServer


async def test_refusals_keep_their_http_status(local_server: TunnelServer) -> None:
    tunnel_id = os.urandom(16)
    with pytest.raises(TunnelError) as caught:
        await Tunnel.open_connect(local_server.url, b"\x0a\x0b\x0c", tunnel_id)
    assert caught.value.http_status == 404  # no phone opened this tunnel
    phone = await Tunnel.open_new(local_server.url, tunnel_id)
    try:
        with pytest.raises(TunnelError) as caught:
            await Tunnel.open_new(local_server.url, tunnel_id)
        assert caught.value.http_status == 409  # the tunnel ID is taken
    finally:
        await phone.close()


async def test_peer_closing_is_a_peer_error_with_its_close_code(
    local_server: TunnelServer,
) -> None:
    tunnel_id = os.urandom(16)
    phone = await Tunnel.open_new(local_server.url, tunnel_id)
    assert phone.routing_id is not None
    desktop = await Tunnel.open_connect(local_server.url, phone.routing_id, tunnel_id)
    await phone.close()
    with pytest.raises(PeerError) as caught:
        async with peer_failures(desktop, PHONE):
            await desktop.recv()
    assert caught.value.reason is PeerReason.CLOSED
    assert caught.value.close_code is not None
    await desktop.close()


async def test_protocol_errors_are_attributed_and_drop_the_tunnel(
    local_server: TunnelServer,
) -> None:
    phone = await Tunnel.open_new(local_server.url, os.urandom(16))
    with pytest.raises(ProtocolError) as caught:
        async with peer_failures(phone, PHONE):
            raise ProtocolError("bad record", reason=ProtocolReason.AUTHENTICATION_FAILED)
    assert (caught.value.peer, caught.value.detail) == ("phone", "bad record")
    assert caught.value.reason is ProtocolReason.AUTHENTICATION_FAILED
    assert str(caught.value).count("bad record") == 1  # said once, not nested
    with pytest.raises(TunnelError):  # aborted: nothing more goes through
        await phone.recv()


async def test_time_limit_says_what_timed_out() -> None:
    with pytest.raises(CeremonyTimeout) as caught:
        async with time_limit(0.01, "phone", "try again."):
            await asyncio.sleep(5)
    assert (caught.value.waiting_for, caught.value.seconds) == ("phone", 0.01)
    assert isinstance(caught.value, TimeoutError)


HOSTILE = "\x1b[2J\x1b]0;owned\x07\u202eevil\x9b"


def _assert_clean(text: str) -> None:
    assert not any(c in text for c in "\x1b\x07\u202e\x9b"), repr(text)


@pytest.fixture
async def hostile_server() -> AsyncIterator[str]:
    """A tunnel server that accepts the desktop, then closes with a screen-clearing reason."""

    async def close_rudely(connection: ServerConnection) -> None:
        await connection.close(code=4000, reason=HOSTILE)

    async with serve(
        close_rudely,
        "127.0.0.1",
        0,
        subprotocols=[CABLE_WEBSOCKET_PROTOCOL],  # type: ignore[list-item]
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def test_a_close_reason_loses_its_control_characters(hostile_server: str) -> None:
    desktop = await Tunnel.open_connect(hostile_server, b"\x01\x02\x03", os.urandom(16))
    with pytest.raises(TunnelClosed) as closed:
        await desktop.recv()
    assert (closed.value.code, closed.value.reason) == (4000, "?[2J?]0;owned??evil?")
    _assert_clean(str(closed.value))
    with pytest.raises(PeerError) as caught:
        async with peer_failures(desktop, PHONE):
            await desktop.recv()
    assert (caught.value.reason, caught.value.close_code) == (PeerReason.CLOSED, 4000)
    terminal = io.StringIO()
    report(caught.value, verbose=True, err=terminal)  # -v: the whole chain, websockets' too
    assert "Traceback" in terminal.getvalue() and "owned" in terminal.getvalue()
    _assert_clean(terminal.getvalue())


async def test_a_handshake_header_loses_its_control_characters() -> None:
    """websockets quotes a bad header in its error; C1 CSI (0x9b) is a legal header byte."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: \x9b2J\xe2\x80\xaewebsocket\r\n"
            b"Connection: Upgrade\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(TunnelError) as caught:
            await Tunnel.open_new(f"ws://127.0.0.1:{port}", os.urandom(16))
    assert caught.value.http_status is None
    assert "Upgrade" in str(caught.value)
    _assert_clean(str(caught.value))


@pytest.mark.parametrize(
    ("url", "warns"),
    [
        ("ws://tunnel.example:8080", True),
        ("WS://192.0.2.7", True),
        ("ws://[2001:db8::1]:80", True),
        ("ws://127.0.0.1:8080", False),
        ("ws://127.8.9.10", False),
        ("ws://[::1]:8080", False),
        ("ws://localhost:8080", False),
        ("wss://tunnel.example", False),
        (None, False),
    ],
)
def test_plain_ws_to_another_machine_is_warned_about(url: str | None, warns: bool) -> None:
    assert (plaintext_warning(url) is not None) is warns


def test_the_warning_names_the_host_but_never_a_password() -> None:
    warning = plaintext_warning("ws://user:s3cret@tunnel.example:8080")
    assert warning is not None and "tunnel.example" in warning and "s3cret" not in warning


async def test_the_phone_warns_before_using_plain_ws(
    advertiser: BumbleAdvertiser, caplog: pytest.LogCaptureFixture
) -> None:
    said: list[str] = []
    url = QRCode.generate("ga")[0].to_url()
    phone = SoftwareAuthenticator(approve=approve_all)
    with pytest.raises(TunnelError):  # .invalid never resolves (RFC 6761)
        await answer_qr(url, phone, advertiser, "ws://tunnel.invalid:9", on_status=said.append)
    assert said[0] == plaintext_warning("ws://tunnel.invalid:9")
    assert [r.levelno for r in caplog.records if r.name == "hybrid.tunnel"] == [logging.WARNING]
