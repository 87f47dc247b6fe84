"""The tunnel client and the shared driver helpers, against a real tunnel server on loopback."""

from __future__ import annotations

import asyncio
import os

import pytest

from hybrid.errors import (
    CeremonyTimeout,
    PeerError,
    PeerReason,
    ProtocolError,
    ProtocolReason,
    TunnelError,
)
from hybrid.transport import PHONE, peer_failures, time_limit
from hybrid.tunnel import Tunnel
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
