"""An open desktop-to-phone session: one CTAP command, then shutdown.

Also a `fido2.ctap.CtapDevice` adapter, for code written against python-fido2's `Ctap2`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from threading import Event
from typing import Final

from fido2.ctap import CtapDevice, CtapError
from fido2.hid import CAPABILITY, CTAPHID

from hybrid.channel import MAX_UPDATES, SecureChannel
from hybrid.errors import HybridError, PeerError, ProtocolError
from hybrid.protocol import LinkingInfo, MessageType, decode_update

_SHUTDOWN_TIMEOUT: Final = 3.0
_GET_INFO: Final = 0x04

OnLinking = Callable[[LinkingInfo], Awaitable[None]]


class HybridSession:
    """An established, encrypted session with a phone (see `HybridClient.session`).

    `get_info` is the phone's authenticatorGetInfo response (CBOR, no status byte): answer
    getInfo from it locally, because phones accept exactly ONE command per session.
    """

    def __init__(self, channel: SecureChannel, get_info: bytes, on_linking: OnLinking) -> None:
        self._channel = channel
        self.get_info = get_info
        self._on_linking = on_linking
        self._used = False
        self._closed = False

    @property
    def revision(self) -> int:
        """Protocol revision the phone chose: 1 (v2.1, typed frames) or 0 (v2.0)."""
        return self._channel.revision

    async def transact(self, request: bytes) -> bytes:
        """Send one CTAP request (`cmd ‖ CBOR`), return the reply (`status ‖ CBOR`)."""
        if self._used:
            raise HybridError(
                "Phones answer only one command per session: start a new session (a new QR "
                "code) for the next request."
            )
        self._used = True
        await self._channel.send_frame(MessageType.CTAP, request)
        for _ in range(MAX_UPDATES + 1):
            message_type, payload = await self._channel.recv_frame()
            if message_type is MessageType.CTAP:
                if not payload:
                    raise ProtocolError("the phone sent an empty CTAP reply")
                return payload
            if message_type is MessageType.UPDATE:
                linking = decode_update(payload)
                if linking is not None:
                    await self._on_linking(linking)
                continue
            if message_type is MessageType.SHUTDOWN:
                raise PeerError(
                    "The phone ended the session without answering: unlock it, keep it near "
                    "this computer and try again."
                )
            raise ProtocolError(f"the phone sent an unexpected {message_type.name} message")
        raise ProtocolError("the phone sent update after update instead of its answer")

    async def shutdown(self) -> None:
        """Tell the phone we are done (best effort, bounded in time); idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(HybridError, TimeoutError):
            async with asyncio.timeout(_SHUTDOWN_TIMEOUT):
                await self._channel.send_frame(MessageType.SHUTDOWN)

    def ctap_device(self, loop: asyncio.AbstractEventLoop | None = None) -> HybridCtapDevice:
        """A `CtapDevice` over this session, to be used from a worker thread."""
        return HybridCtapDevice(self, loop or asyncio.get_running_loop())


class HybridCtapDevice(CtapDevice):
    """`fido2.ctap.CtapDevice` over a hybrid session, for `fido2.ctap2.Ctap2`.

    getInfo is answered locally. Every other command goes to the phone, which answers one
    command per session: `fido2.client.Fido2Client` sends pre-flight getAssertion probes (for
    allow/exclude lists) that use up that one command, so build requests with `Ctap2` directly.
    Call it from a worker thread (`await asyncio.to_thread(...)`): it blocks until the phone
    answers, and the session's event loop must keep running meanwhile.
    """

    def __init__(self, session: HybridSession, loop: asyncio.AbstractEventLoop) -> None:
        self._session = session
        self._loop = loop
        self._loop_thread = threading.get_ident() if loop.is_running() else None

    @property
    def capabilities(self) -> int:
        return int(CAPABILITY.CBOR)

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: Event | None = None,
        on_keepalive: Callable[..., None] | None = None,
    ) -> bytes:
        if cmd != CTAPHID.CBOR:
            raise CtapError(CtapError.ERR.INVALID_COMMAND)
        if data[:1] == bytes([_GET_INFO]):
            return b"\x00" + self._session.get_info
        if threading.get_ident() == self._loop_thread:
            raise HybridError(
                "HybridCtapDevice.call blocks until the phone answers: call it from a worker "
                "thread (await asyncio.to_thread(...)), not from the event loop."
            )
        future = asyncio.run_coroutine_threadsafe(self._session.transact(data), self._loop)
        while True:
            try:
                return future.result(timeout=0.1)
            except TimeoutError:
                if event is not None and event.is_set():
                    future.cancel()
                    raise CtapError(CtapError.ERR.KEEPALIVE_CANCEL) from None

    @classmethod
    def list_devices(cls) -> Iterator[CtapDevice]:
        """Hybrid devices are not enumerated: a session comes from `HybridClient.session`."""
        return iter(())
