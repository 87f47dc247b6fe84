"""`fido2.ctap.CtapDevice` over a hybrid session, for code written against fido2's `Ctap2`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from threading import Event

from fido2.ctap import CtapDevice, CtapError
from fido2.hid import CAPABILITY, CTAPHID

from hybrid.ctap import CtapCommand
from hybrid.desktop.session import HybridSession
from hybrid.errors import HybridError


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
        if data[:1] == bytes([CtapCommand.GET_INFO]):
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
