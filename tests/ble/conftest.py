"""Real parts for the BLE tests: private dbus-daemons, a fake BlueZ on them, a virtual radio.

The one thing no test machine has is bluetoothd with an adapter, so `FakeBluez` plays it on a
real bus: the same D-Bus calls, signals and property reads that bleak and BluezAdvertiser make
against BlueZ arrive over a real socket from a real dbus-daemon.
"""

# No `from __future__ import annotations`: dbus-fast reads D-Bus signatures from evaluated
# annotations (a postponed `-> None` reaches it as the string "None").

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest
from dbus_fast import BusType, Message, MessageType, PropertyAccess, Variant, unpack_variants
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool, DBusDict, DBusSignature, DBusStr
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={socket}</listen>
  <auth>{auth}</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    {policy}
  </policy>
</busconfig>
"""
StartBus = Callable[..., str]
DBusStrList = Annotated[list[str], DBusSignature("as")]
DBusInt16 = Annotated[int, DBusSignature("n")]


@pytest.fixture
def dbus_daemon() -> str:
    """Path of dbus-daemon; the D-Bus tests need the real daemon, so its absence is a failure."""
    path = shutil.which("dbus-daemon")
    if path is None:
        pytest.fail(
            "dbus-daemon is not on PATH: install the Debian package 'dbus' "
            "(apt-get install -y dbus); the BLE tests start private D-Bus daemons."
        )
    return path


@pytest.fixture
def start_bus(tmp_path: Path, dbus_daemon: str) -> Iterator[StartBus]:
    """Start private dbus-daemons (`auth`, extra `policy` XML); each is killed after the test."""
    procs: list[subprocess.Popen[str]] = []

    def start(auth: str = "EXTERNAL", policy: str = "") -> str:
        folder = tmp_path / f"bus{len(procs)}"
        folder.mkdir()
        config = folder / "bus.conf"
        config.write_text(BUS_CONFIG.format(socket=folder / "socket", auth=auth, policy=policy))
        with (folder / "stderr").open("w") as stderr:  # keeps daemon warnings out of the log
            proc = subprocess.Popen(
                [dbus_daemon, f"--config-file={config}", "--print-address", "--nofork"],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        procs.append(proc)
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        if not address:
            pytest.fail(f"dbus-daemon did not start: {(folder / 'stderr').read_text()}")
        return address

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def system_bus(start_bus: StartBus, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bus that bleak's BlueZ backend takes for the system bus."""
    address = start_bus()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
    return address


async def disconnect(bus: MessageBus) -> None:
    """Close a dbus-fast connection: disconnect() only shuts the socket down."""
    bus.disconnect()
    await asyncio.wait_for(bus.wait_for_disconnect(), 2)  # type: ignore[no-untyped-call]


class FakeAdapter(ServiceInterface):
    """org.bluez.Adapter1 as bleak uses it: power and roles to read, discovery to start."""

    def __init__(self, *, powered: bool = True, roles: tuple[str, ...] = ("central",)) -> None:
        super().__init__("org.bluez.Adapter1")
        self.powered = powered
        self.roles = list(roles)
        self.filter_calls: list[dict[str, Any]] = []  # every SetDiscoveryFilter, in order
        self.discovering = False

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:
        return "00:11:22:33:44:55"

    @dbus_property(access=PropertyAccess.READ)
    def Powered(self) -> DBusBool:
        return self.powered

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> DBusStrList:
        return self.roles

    @dbus_method()
    def SetDiscoveryFilter(self, filters: DBusDict) -> None:
        self.filter_calls.append(unpack_variants(filters))

    @dbus_method()
    def StartDiscovery(self) -> None:
        self.discovering = True

    @dbus_method()
    def StopDiscovery(self) -> None:
        self.discovering = False


class FakeDevice(ServiceInterface):
    """org.bluez.Device1 of a remote advertiser, as BlueZ exports it when an advert arrives."""

    def __init__(self, adapter_path: str, address: str, service_data: dict[str, bytes]) -> None:
        super().__init__("org.bluez.Device1")
        self.adapter_path = adapter_path
        self.address = address
        self.service_data = service_data

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> Annotated[str, DBusSignature("o")]:
        return self.adapter_path

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:
        return self.address

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> DBusStr:
        return self.address.replace(":", "-")

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> DBusInt16:
        return -60

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> DBusDict:
        return {uuid: Variant("ay", data) for uuid, data in self.service_data.items()}


@dataclass
class Registration:
    """One RegisterAdvertisement call and the advert properties read back from its caller."""

    adapter_path: str
    sender: str
    path: str
    properties: dict[str, Any]


@dataclass
class FakeBluez:
    """Owns org.bluez on a bus: adapters for bleak, LEAdvertisingManager1 for the advertiser.

    `refuse_with` makes RegisterAdvertisement answer with that D-Bus error name instead.
    """

    adapters: dict[str, FakeAdapter]
    refuse_with: str | None = None
    registrations: list[Registration] = field(default_factory=list)
    unregistered: list[str] = field(default_factory=list)
    bus: MessageBus | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self, address: str) -> None:
        self.bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
        for name, adapter in self.adapters.items():
            self.bus.export(f"/org/bluez/{name}", adapter)
        self.bus.add_message_handler(self._on_message)
        await self.bus.request_name("org.bluez")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.bus is not None:
            await disconnect(self.bus)

    def add_device(self, adapter: str, address: str, service_data: dict[str, bytes]) -> None:
        """Export a Device1 under the adapter: the InterfacesAdded signal bleak scans for."""
        assert self.bus is not None
        path = f"/org/bluez/{adapter}/dev_{address.replace(':', '_')}"
        self.bus.export(path, FakeDevice(f"/org/bluez/{adapter}", address, service_data))

    async def release(self, registration: Registration) -> None:
        """Do what BlueZ does when it drops an advert itself: call its Release method."""
        assert self.bus is not None
        reply = await self.bus.call(
            Message(
                destination=registration.sender,
                path=registration.path,
                interface="org.bluez.LEAdvertisement1",
                member="Release",
            )
        )
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body

    def _on_message(self, msg: Message) -> bool | None:
        if msg.interface != "org.bluez.LEAdvertisingManager1" or msg.path is None:
            return None
        name = msg.path.rsplit("/", 1)[-1]
        if name not in self.adapters:
            return None  # dbus-fast answers UnknownMethod/UnknownObject, as BlueZ would
        task = asyncio.create_task(self._advertising_call(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _advertising_call(self, msg: Message) -> None:
        assert self.bus is not None
        if msg.member == "UnregisterAdvertisement":
            self.unregistered.append(msg.body[0])
            self.bus.send(Message.new_method_return(msg))
            return
        if self.refuse_with is not None:
            self.bus.send(Message.new_error(msg, self.refuse_with, "refused by the fake BlueZ"))
            return
        reply = await self.bus.call(
            Message(
                destination=msg.sender,
                path=msg.body[0],
                interface="org.freedesktop.DBus.Properties",
                member="GetAll",
                signature="s",
                body=["org.bluez.LEAdvertisement1"],
            )
        )
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        properties = unpack_variants(reply.body[0])
        assert msg.sender is not None and msg.path is not None
        self.registrations.append(Registration(msg.path, msg.sender, msg.body[0], properties))
        self.bus.send(Message.new_method_return(msg))


@pytest.fixture
async def fake_bluez(system_bus: str) -> AsyncIterator[Callable[..., Any]]:
    """Start a FakeBluez on the test's system bus: `await fake_bluez(adapters={...})`."""
    started: list[FakeBluez] = []

    async def start(adapters: dict[str, FakeAdapter] | None = None, **kwargs: Any) -> FakeBluez:
        bluez = FakeBluez({"hci0": FakeAdapter()} if adapters is None else adapters, **kwargs)
        started.append(bluez)
        await bluez.start(system_bus)
        return bluez

    yield start
    for bluez in started:
        await bluez.close()
