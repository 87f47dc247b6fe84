"""Path parsing: every vector of test-vectors.md §F, valid and invalid, plus the tricks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import pytest

from tunnel_server import TunnelServer
from tunnel_server.paths import ConnectTunnel, NewTunnel, Static, parse_path, short_id
from tunnel_server.testing import cable_connect, http_request

HELLO = "68656C6C6F2C20776562617574686E21"  # b"hello, webauthn!"
TUNNEL_ID = "3EEF97097986413B059EAA2A30D653D4"

# §F1-F6: the paths of the tunnel URLs real clients build.
URL_VECTORS = [
    ("wss://cable.my4kstlhndi4c.net/cable/new/3EEF97097986413B059EAA2A30D653D4", None),
    ("ws://localhost:8080/cable/new/3EEF97097986413B059EAA2A30D653D4", None),
    (
        "wss://cable.my4kstlhndi4c.net/cable/connect/090A0B/3EEF97097986413B059EAA2A30D653D4",
        "090A0B",
    ),
    ("wss://cable.ua5v.com/cable/connect/090A0B/3EEF97097986413B059EAA2A30D653D4", "090A0B"),
    ("wss://cable.auth.com/cable/connect/090A0B/3EEF97097986413B059EAA2A30D653D4", "090A0B"),
    ("ws://localhost:8080/cable/connect/090A0B/3EEF97097986413B059EAA2A30D653D4", "090A0B"),
]

# §F "Server path parsing" invalid list, in order, then the extra tricks the brief names.
INVALID = [
    "/",
    "/cable/new/",
    "/cable/new/not_hex_digits_here_but_32_chars",
    "/cable/new/C0FFEE",
    "/cable/new/C0FFEEC0FFEEC0FFEEC0FFEEC0FFEEC0FFEE",
    f"/cable/new/{HELLO}/",
    f"/cable/new/../new/{HELLO}",
    "/cable/connect/C0FFEE/not_hex_digits_here_but_32_chars",
    "/cable/connect/C0FFEE/COFFEE",
    "/cable/connect/C0/FFEE",
    f"/cable/connect/C0/{HELLO}",
    f"/cable/connect/C0F/{HELLO}",
    f"/cable/connect/C0FFEECO/{HELLO}",
    f"/cable/connect/C0FFEE/{HELLO}/1234",
    f"/cable/connect/C0FFEE/{HELLO}/",
    f"cable/new/{HELLO}",
    f"../cable/new/{HELLO}",
    f"/../cable/new/{HELLO}",
    "../../../etc/passwd",
    # percent-encoding, doubled slashes, queries, fragments, absolute form, odd bytes
    f"/cable/new/%33{HELLO[1:]}",
    f"/cable%2Fnew/{HELLO}",
    f"/cable/new%2F{HELLO}",
    f"//cable/new/{HELLO}",
    f"/cable//new/{HELLO}",
    f"/cable/new//{HELLO}",
    f"/cable/connect//C0FFEE/{HELLO}",
    f"/cable/connect/C0FFEE//{HELLO}",
    f"/cable/new/{HELLO}?x=1",
    f"/cable/new/{HELLO}?",
    f"/cable/new/{HELLO}#frag",
    f"/cable/connect/C0FFEE/{HELLO}?x=1",
    f"http://example.com/cable/new/{HELLO}",
    f"/cable/new/{HELLO[:-1]}",
    f"/cable/new/{HELLO}0",
    f"/cable/new/+{HELLO[1:]}",
    f"/cable/new/0x{HELLO[2:]}",
    f"/cable/new/ {HELLO[1:]}",
    f"/cable/new/{HELLO}\n",
    f"/CABLE/new/{HELLO}",
    f"/cable/NEW/{HELLO}",
    f"/cable/contact/{HELLO}",
    f"/cable/./new/{HELLO}",
    f"/cable/new/{HELLO};x",
    f"/cable/new\\{HELLO}",
    "/healthz/",
    "/healthz?x=1",
    "/metrics/",
    "",
    "*",
]


def test_valid_vectors_from_kanidm() -> None:
    hello = b"hello, webauthn!"
    assert parse_path(f"/cable/new/{HELLO}") == NewTunnel(hello)
    assert parse_path(f"/cable/connect/616263/{HELLO}") == ConnectTunnel(b"abc", hello)
    # Lowercase hex is accepted and means the same IDs.
    assert parse_path(f"/cable/new/{HELLO.lower()}") == NewTunnel(hello)
    assert parse_path(f"/cable/connect/616263/{HELLO.lower()}") == ConnectTunnel(b"abc", hello)


@pytest.mark.parametrize(("url", "routing"), URL_VECTORS)
def test_tunnel_url_vectors_parse(url: str, routing: str | None) -> None:
    route = parse_path(urlsplit(url).path)
    tunnel_id = bytes.fromhex("3EEF97097986413B059EAA2A30D653D4")
    if routing is None:
        assert route == NewTunnel(tunnel_id)
    else:
        assert route == ConnectTunnel(bytes.fromhex(routing), tunnel_id)


def test_static_routes() -> None:
    assert parse_path("/healthz") is Static.HEALTHZ
    assert parse_path("/metrics") is Static.METRICS


@pytest.mark.parametrize("target", INVALID)
def test_invalid_paths_do_not_parse(target: str) -> None:
    assert parse_path(target) is None


def test_overlong_path_does_not_parse() -> None:
    assert parse_path("/cable/new/" + "A" * 100_000) is None


def test_short_id_hides_most_of_the_tunnel_id() -> None:
    tunnel_id = bytes.fromhex(TUNNEL_ID)
    assert short_id(tunnel_id) == "3EEF.."
    assert TUNNEL_ID[4:8] not in short_id(tunnel_id)


# Over the wire: websockets sends the request target verbatim (no normalising), and the server
# answers 404 before any upgrade. Targets that are not even valid HTTP get no answer at all.
WIRE_INVALID = [t for t in INVALID if t and " " not in t and "\n" not in t]


@pytest.mark.parametrize("target", WIRE_INVALID)
async def test_invalid_paths_get_404_without_upgrade(server: TunnelServer, target: str) -> None:
    reply = await http_request(server.url, target)
    assert reply.status == 404, reply
    assert "upgrade" not in reply.headers
    assert b"check the URL" in reply.body
    assert server.active_tunnels() == 0


@pytest.mark.parametrize("target", ["", f"/cable/new/ {HELLO[1:]}"])
async def test_unparseable_request_lines_are_dropped(server: TunnelServer, target: str) -> None:
    reply = await http_request(server.url, target, timeout=2)
    assert reply.status in (0, 404)
    assert server.active_tunnels() == 0


async def test_lowercase_ids_on_the_wire(server: TunnelServer) -> None:
    reply = await http_request(server.url, f"/cable/new/{TUNNEL_ID.lower()}", timeout=1)
    assert reply.status == 101
    assert reply.headers["x-cable-routing-id"] == server.routing_id
    assert reply.headers["sec-websocket-protocol"] == "fido.cable"


async def test_kanidm_valid_vectors_on_the_wire(
    make_server: Callable[..., Awaitable[TunnelServer]],
) -> None:
    server = await make_server(routing_id="616263")
    phone = await cable_connect(f"{server.url}/cable/new/{HELLO}")
    desktop = await cable_connect(f"{server.url}/cable/connect/616263/{HELLO.lower()}")
    await desktop.send(b"hello, webauthn!")
    assert await phone.recv() == b"hello, webauthn!"
    await desktop.close()
    await phone.wait_closed()
