"""BumbleAdvertiser: the exact bytes on air, replacing and stopping, bad payloads, real HCI."""

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from bumble.controller import Controller
from bumble.device import Advertisement, Device
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.errors import AdvertiserError, AdvertiserReason

ADVERT = bytes(range(1, 21))


@pytest.fixture
async def air(radio: VirtualRadio) -> AsyncIterator[asyncio.Queue[Advertisement]]:
    """Every advert a plain bumble scanner on the radio hears."""
    heard: asyncio.Queue[Advertisement] = asyncio.Queue()
    listener = await radio.new_device("listener")
    listener.on(Device.EVENT_ADVERTISEMENT, heard.put_nowait)
    await listener.start_scanning(active=False, filter_duplicates=False)
    yield heard


async def next_payload(air: asyncio.Queue[Advertisement], address: str) -> bytes:
    while True:
        advert = await asyncio.wait_for(air.get(), 2)
        if advert.address.to_string(with_type_qualifier=False) == address:
            return bytes(advert.data_bytes)


def address_of(advertiser: BumbleAdvertiser) -> str:
    return str(advertiser.device.random_address.to_string(with_type_qualifier=False))


async def test_advert_is_one_service_data_element(
    radio: VirtualRadio, air: asyncio.Queue[Advertisement]
) -> None:
    advertiser = await BumbleAdvertiser.from_radio(radio, interval_ms=20)
    await advertiser.advertise(ADVERT)
    # length 23, type 0x16 (Service Data, 16-bit UUID), UUID 0xFFF9 little-endian, payload.
    assert await next_payload(air, address_of(advertiser)) == b"\x17\x16\xf9\xff" + ADVERT


async def test_advertise_again_replaces_and_stop_is_idempotent(
    radio: VirtualRadio, air: asyncio.Queue[Advertisement]
) -> None:
    advertiser = await BumbleAdvertiser.from_radio(radio, interval_ms=20)
    await advertiser.stop()  # before advertise: nothing to do
    await advertiser.advertise(ADVERT)
    await advertiser.advertise(bytes(20))
    address = address_of(advertiser)
    while (payload := await next_payload(air, address)) != b"\x17\x16\xf9\xff" + bytes(20):
        assert payload.endswith(ADVERT)  # only the old advert may still be in flight
    await advertiser.stop()
    await advertiser.stop()
    assert not advertiser.device.is_advertising


@pytest.mark.parametrize("payload", [b"", bytes(28), "not bytes"])
async def test_payloads_no_advert_can_carry_are_refused(
    radio: VirtualRadio, payload: bytes
) -> None:
    advertiser = await BumbleAdvertiser.from_radio(radio)
    with pytest.raises(AdvertiserError) as info:
        await advertiser.advertise(payload)
    assert info.value.reason is AdvertiserReason.BAD_PAYLOAD
    assert not advertiser.device.is_advertising


async def test_longest_payload_fits_a_legacy_advert(
    radio: VirtualRadio, air: asyncio.Queue[Advertisement]
) -> None:
    advertiser = await BumbleAdvertiser.from_radio(radio, interval_ms=20)
    await advertiser.advertise(bytes(range(27)))
    payload = await next_payload(air, address_of(advertiser))
    assert len(payload) == 31 and payload.endswith(bytes(range(27)))


async def test_unknown_transport_is_a_clear_error() -> None:
    with pytest.raises(AdvertiserError) as info:
        await BumbleAdvertiser.open("carrier-pigeon:0", timeout=2)
    assert info.value.reason is AdvertiserReason.BAD_TRANSPORT


async def test_unreachable_controller_is_a_clear_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(AdvertiserError) as info:
        await BumbleAdvertiser.open(f"tcp-client:127.0.0.1:{port}", timeout=2)
    assert info.value.reason is AdvertiserReason.CANNOT_OPEN


async def test_controller_that_never_answers_is_a_clear_error() -> None:
    with socket.socket() as server:  # accepts the connection, never speaks HCI
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(AdvertiserError) as info:
            await BumbleAdvertiser.open(f"tcp-client:127.0.0.1:{port}", timeout=0.2)
        assert info.value.reason is AdvertiserReason.DID_NOT_START


async def test_real_hci_transport_to_a_virtual_dongle(
    radio: VirtualRadio, air: asyncio.Queue[Advertisement]
) -> None:
    # A controller on the radio, reached over HCI-over-TCP the way a dongle is reached over USB.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    dongle = await open_tcp_server_transport_with_socket(sock)
    try:
        radio.add_controller("dongle", dongle.source, dongle.sink)
        async with await BumbleAdvertiser.open(
            f"tcp-client:127.0.0.1:{port}", interval_ms=20, timeout=2
        ) as advertiser:
            await advertiser.advertise(ADVERT)
            assert await next_payload(air, address_of(advertiser)) == b"\x17\x16\xf9\xff" + ADVERT
        assert not advertiser.device.is_advertising
    finally:
        await dongle.close()
        server: asyncio.Server = getattr(dongle, "server")  # noqa: B009  (bumble's own attribute)
        server.close()
        await server.wait_closed()


def radio_is_advertising(advertiser: BumbleAdvertiser) -> bool:
    """What the device's controller does, not what bumble's host believes it does."""
    controller = advertiser.device.host.hci_sink
    assert isinstance(controller, Controller)
    return controller.is_advertising


async def turns_to_settle(task: asyncio.Task[None], limit: int = 200) -> int:
    """Event-loop turns until `task` is done (limit + 1: still running). The virtual radio
    answers HCI commands on the loop itself, so a task that waits on no clock ends in a few."""
    for turn in range(limit + 1):
        if task.done():
            return turn
        await asyncio.sleep(0)
    return limit + 1


async def test_advertise_uncancelled_takes_fewer_turns_than_the_cancel_points_tested() -> None:
    """Guards the test below: its 40 cancel points must cover every await of advertise()."""
    async with VirtualRadio() as radio:
        advertiser = await BumbleAdvertiser.from_radio(radio, "phone")
        starting = asyncio.create_task(advertiser.advertise(b"\x01" * 20))
        assert 10 < await turns_to_settle(starting) < CANCEL_POINTS
        await starting
        assert radio_is_advertising(advertiser)
        await advertiser.stop()
        assert not radio_is_advertising(advertiser)


CANCEL_POINTS = 40


@pytest.mark.parametrize("steps", range(CANCEL_POINTS))
async def test_cancelled_advertise_ends_cancelled_with_the_advert_off(steps: int) -> None:
    """Ctrl-C can land anywhere in advertise(): the task ends cancelled (the phone CLI then
    stops at once instead of running to its --timeout) and the controller is not advertising,
    without the caller having to call stop(). The timeout is an hour: nothing may wait on it."""
    async with VirtualRadio() as radio:
        advertiser = await BumbleAdvertiser.from_radio(radio, "phone", timeout=3600)
        starting = asyncio.create_task(advertiser.advertise(b"\x01" * 20))
        for _ in range(steps):
            await asyncio.sleep(0)
        finished_first = starting.done()
        starting.cancel()
        assert await turns_to_settle(starting) <= 200
        if finished_first:  # past the last await: nothing left to cancel
            assert not starting.cancelled() and radio_is_advertising(advertiser)
        else:
            assert starting.cancelled()
            assert not radio_is_advertising(advertiser) and not advertiser.device.is_advertising
        await advertiser.stop()
        assert not radio_is_advertising(advertiser)


async def test_cancelled_stop_still_turns_the_advert_off() -> None:
    """A stop() that has begun finishes its work before the cancellation is passed on."""
    async with VirtualRadio() as radio:
        advertiser = await BumbleAdvertiser.from_radio(radio, "phone", timeout=3600)
        for steps in range(1, 12):  # from 1: a task cancelled before its first step never ran
            await advertiser.advertise(b"\x01" * 20)
            stopping = asyncio.create_task(advertiser.stop())
            for _ in range(steps):
                await asyncio.sleep(0)
            finished_first = stopping.done()
            stopping.cancel()
            assert await turns_to_settle(stopping) <= 200
            assert stopping.cancelled() is not finished_first
            assert not radio_is_advertising(advertiser)
