"""An open desktop-to-phone session: the phone's getInfo, one CTAP command, then shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from fido2.ctap2.base import Info

from hybrid.ctap import decode_cbor_map
from hybrid.errors import HybridError, ProtocolError
from hybrid.protocol import LinkingInfo
from hybrid.protocol.conversation import Connected, CtapReply, Event, LinkingReceived
from hybrid.protocol.desktop import DesktopConversation
from hybrid.transport import ConversationTransport

if TYPE_CHECKING:
    from hybrid.desktop.ctap_device import HybridCtapDevice

_SHUTDOWN_TIMEOUT: Final = 3.0

OnLinking = Callable[[LinkingInfo], Awaitable[None]]


@functools.lru_cache(maxsize=8)
def parse_get_info(get_info: bytes) -> Info:
    """`fido2.ctap2.Info` from getInfo CBOR, cached per phone (`Info` is frozen).

    fido2's parser takes most of a millisecond; a phone sends the same getInfo every time.
    """
    try:
        return Info.from_dict(decode_cbor_map(get_info))
    except ProtocolError:
        raise
    except Exception as exc:  # fido2 raises KeyError/TypeError/ValueError on bad members
        raise ProtocolError(f"the phone's getInfo is malformed ({type(exc).__name__})") from exc


class HybridSession:
    """An established, encrypted session with a phone (see `HybridClient.session`).

    `get_info` is the phone's authenticatorGetInfo response (CBOR, no status byte) and `info`
    the same parsed: answer getInfo from it locally, because phones accept exactly ONE command
    per session.
    """

    def __init__(
        self,
        transport: ConversationTransport,
        conversation: DesktopConversation,
        on_linking: OnLinking,
    ) -> None:
        self._transport = transport
        self._conversation = conversation
        self._on_linking = on_linking
        self.get_info = b""

    async def connect(self) -> None:
        """Run the handshake and read the phone's post-handshake message (and linking info)."""
        connected = await self._transport.wait_for(Connected, self._on_event)
        self.get_info = connected.get_info
        await self._transport.handle_pending(self._on_event)

    @property
    def revision(self) -> int:
        """Protocol revision the phone chose: 1 (v2.1, typed frames) or 0 (v2.0)."""
        return self._conversation.revision

    @property
    def info(self) -> Info:
        """The phone's getInfo, parsed by python-fido2; `ProtocolError` if it is malformed."""
        return parse_get_info(self.get_info)

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, LinkingReceived):
            await self._on_linking(event.linking)

    async def transact(self, request: bytes) -> bytes:
        """Send one CTAP request (`cmd ‖ CBOR`), return the reply (`status ‖ CBOR`).

        A second call raises `SessionSpent`.
        """
        self._conversation.send_request(request)
        reply = await self._transport.wait_for(CtapReply, self._on_event)
        return reply.payload

    async def shutdown(self) -> None:
        """Tell the phone we are done (best effort, bounded in time); idempotent."""
        self._conversation.close()
        with contextlib.suppress(HybridError, TimeoutError):
            async with asyncio.timeout(_SHUTDOWN_TIMEOUT):
                await self._transport.flush()

    def ctap_device(self, loop: asyncio.AbstractEventLoop | None = None) -> HybridCtapDevice:
        """A `fido2.ctap.CtapDevice` over this session, to be used from a worker thread."""
        from hybrid.desktop.ctap_device import HybridCtapDevice

        return HybridCtapDevice(self, loop or asyncio.get_running_loop())
