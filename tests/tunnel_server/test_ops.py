"""Operations: health and metrics endpoints, logs, graceful shutdown, TLS, settings."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.tunnel_server.servers import ServerFactory, self_signed, tls_server
from tunnel_server import ServerConfig, ServerConfigError, TunnelServer
from tunnel_server.logs import LogfmtFormatter, RateLimitedLog
from tunnel_server.testing import (
    cable_connect,
    connect_url,
    http_request,
    new_url,
    wait_until,
)

TUNNEL = "A1B2C3D4E5F60718293A4B5C6D7E8F90"


async def test_healthz(server: TunnelServer) -> None:
    reply = await http_request(server.url, "/healthz", headers={})
    assert (reply.status, reply.body) == (200, b"ok\n")


async def test_metrics_in_prometheus_text_format(server: TunnelServer) -> None:
    phone = await cable_connect(new_url(server.url, TUNNEL))
    reply = await http_request(server.url, "/metrics", headers={})
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    for name in (
        "cable_tunnels_active 1.0",
        "cable_tunnels_created_total 1.0",
        'cable_tunnels_completed_total{reason="normal"} 0.0',
        'cable_relayed_messages_total{direction="phone_to_desktop"} 0.0',
        'cable_relayed_bytes_total{direction="desktop_to_phone"} 0.0',
        'cable_rejections_total{reason="unknown_tunnel"} 0.0',
        "# TYPE cable_tunnel_duration_seconds histogram",
        "process_resident_memory_bytes",
    ):
        assert name in text
    await phone.close()


async def test_logs_carry_no_payload_and_no_full_tunnel_id(
    server: TunnelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tunnel_server")
    secret = b"SECRET-PAYLOAD-BYTES"
    phone = await cable_connect(new_url(server.url, TUNNEL))
    desktop = await cable_connect(connect_url(server.url, server.routing_id, TUNNEL))
    await desktop.send(secret)
    assert await phone.recv() == secret
    await phone.send("text is refused")
    await wait_until(lambda: server.active_tunnels() == 0)
    await http_request(server.url, f"/cable/connect/{server.routing_id}/{TUNNEL}")
    formatter = LogfmtFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    text = "\n".join(lines)
    events = {r.getMessage() for r in caplog.records if r.name == "tunnel_server"}
    assert {"tunnel_opened", "desktop_joined", "tunnel_ending", "tunnel_closed"} <= events
    assert "rejected" in events
    assert "tunnel=A1B2.." in text
    assert TUNNEL[:8] not in text and TUNNEL[:8].lower() not in text
    assert "SECRET" not in text and "text is refused" not in text
    assert all(line.startswith("ts=") and " event=" in line for line in lines)


async def test_graceful_shutdown_lets_joined_tunnels_finish(server: TunnelServer) -> None:
    phone = await cable_connect(new_url(server.url, TUNNEL))
    desktop = await cable_connect(connect_url(server.url, server.routing_id, TUNNEL))
    waiting = await cable_connect(new_url(server.url, "F" * 32))  # no desktop will ever come
    stopping = asyncio.create_task(server.stop(grace=10))
    await asyncio.wait_for(waiting.wait_closed(), 3)
    assert waiting.close_code == 1001
    with pytest.raises(OSError):  # no longer accepting
        await cable_connect(new_url(server.url, "E" * 32))
    await desktop.send(b"still relayed during the grace period")
    assert await phone.recv() == b"still relayed during the grace period"
    assert not stopping.done()
    await desktop.close()
    await asyncio.wait_for(stopping, 3)
    assert phone.close_code == 1000
    assert server.active_tunnels() == 0


async def test_shutdown_closes_what_is_left_after_grace(server: TunnelServer) -> None:
    phone = await cable_connect(new_url(server.url, TUNNEL))
    desktop = await cable_connect(connect_url(server.url, server.routing_id, TUNNEL))
    slow, _ = await asyncio.open_connection("127.0.0.1", server.port)  # mid-handshake
    await asyncio.wait_for(server.stop(grace=0.1), 5)
    for ws in (phone, desktop):
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2)
        assert ws.close_code == 1001
        assert ws.close_reason == "the tunnel server is shutting down; try again"
    assert await asyncio.wait_for(slow.read(), 2) == b""
    assert server.active_tunnels() == 0 and server.open_connections() == 0


async def test_tls(make_server: ServerFactory, tmp_path: Path) -> None:
    server, cert = await tls_server(make_server, tmp_path)
    assert server.url.startswith("wss://localhost:")
    client_tls = ssl.create_default_context(cafile=str(cert))
    phone = await cable_connect(new_url(server.url, TUNNEL), ssl=client_tls)
    desktop = await cable_connect(
        connect_url(server.url, server.routing_id, TUNNEL), ssl=client_tls
    )
    await phone.send(b"over TLS")
    assert await desktop.recv() == b"over TLS"
    await desktop.close()
    await phone.wait_closed()
    await wait_until(lambda: server.active_tunnels() == 0)


async def test_tls_with_a_bad_key_file_says_what_to_check(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    server = TunnelServer(ServerConfig(port=0, tls_cert=str(cert), tls_key=str(bad)))
    with pytest.raises(ServerConfigError, match="check both paths"):
        await server.start()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"routing_id": "12345"}, "--routing-id must be 6 hex digits"),
        ({"routing_id": "GGGGGG"}, "--routing-id must be 6 hex digits"),
        ({"host": "0.0.0.0"}, "refusing plain ws://"),
        ({"host": "example.com"}, "refusing plain ws://"),
        ({"tls_cert": "cert.pem"}, "must be given together"),
        ({"ttl": 0}, "--ttl must be greater than 0"),
        ({"max_messages": -1}, "--max-messages must be greater than 0"),
        ({"port": 70000}, "--port must be 0..65535"),
        ({"grace": -1}, "--grace must be 0 or more"),
    ],
)
def test_bad_settings_are_refused_with_advice(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ServerConfigError, match=message):
        ServerConfig(**changes)  # type: ignore[arg-type]


def test_settings_normalise_and_allow_insecure_or_loopback() -> None:
    config = ServerConfig(routing_id="0a0b0c", allow_origins=("WSS://A.example/",))
    assert config.routing_id == "0A0B0C"
    assert config.allow_origins == ("wss://a.example",)
    assert ServerConfig(host="0.0.0.0", insecure=True).host == "0.0.0.0"
    assert ServerConfig(host="::1").scheme == "ws"
    assert ServerConfig().routing_id != ServerConfig().routing_id  # random per start


async def test_port_in_use_is_a_clear_error(server: TunnelServer) -> None:
    clash = TunnelServer(ServerConfig(port=server.port))
    with pytest.raises(ServerConfigError, match="pick another --port"):
        await clash.start()


def test_refusal_logs_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tunnel_server")
    now = [0.0]
    log = RateLimitedLog(interval=1.0, clock=lambda: now[0])
    for _ in range(5):
        log(logging.INFO, "rejected", reason="not_found")
    log(logging.INFO, "rejected", reason="unknown_tunnel")  # another reason is not held back
    now[0] = 1.5
    log(logging.INFO, "rejected", reason="not_found")
    fields = [r.fields for r in caplog.records]  # type: ignore[attr-defined]
    assert fields == [
        {"reason": "not_found"},
        {"reason": "unknown_tunnel"},
        {"reason": "not_found", "suppressed": 4},
    ]


def test_log_values_that_are_not_printable_are_escaped_not_written_raw() -> None:
    """A client-chosen value cannot clear the operator's screen or forge a log line."""
    record = logging.LogRecord("tunnel_server", logging.INFO, __file__, 1, "rejected", (), None)
    record.fields = {
        "client": "\x1b[2J\u202eevil",
        "origin": "a\nts=forged",
        "c1": "\x9b31m",
        "plain": "203.0.113.9",
    }
    line = LogfmtFormatter().format(record)
    assert not any(c in line for c in "\x1b\u202e\n\x9b")
    assert 'client="\\u001b[2J\\u202eevil"' in line and "c1=" + '"\\u009b31m"' in line
    assert 'origin="a\\nts=forged"' in line and "plain=203.0.113.9" in line
