"""The desktop role: `HybridClient` signs in (or registers) with a phone or a USB security key.

A thin driver: QR code and BLE scan here, the conversation itself in
`hybrid.protocol.desktop.DesktopConversation`, errors translated by `hybrid.transport`; the
keys in `hybrid.desktop.security_keys`, the race between all of them in `hybrid.desktop.race`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from bleak.backends.scanner import BaseBleakScanner

from hybrid.ble.scanner import CableScanner, check_bluetooth
from hybrid.callbacks import call_maybe_async
from hybrid.desktop.key_finder import KeyFinder, ListKeys
from hybrid.desktop.race import Race, may_come_back
from hybrid.desktop.security_keys import KeyRequest, OnPin, key_path
from hybrid.desktop.session import HybridSession
from hybrid.errors import HybridError
from hybrid.protocol import (
    Eid,
    LinkingInfo,
    QRCode,
    decrypt_advert,
    normalize_base_url,
    tunnel_domain,
)
from hybrid.protocol.desktop import DesktopConversation
from hybrid.protocol.domains import base_url
from hybrid.status import Stage, Status
from hybrid.text import shown
from hybrid.transport import PHONE, ConversationTransport, peer_failures, time_limit
from hybrid.tunnel import Tunnel, warn_if_plaintext
from hybrid.webauthn import (
    PreparedRequest,
    cache_fido2_type_hints,
    finish_get_assertion,
    finish_make_credential,
    prepare_get_assertion,
    prepare_make_credential,
)

log = logging.getLogger(__name__)

#: After this long without the phone's advert, say that its Bluetooth must be on and near.
PHONE_HINT_AFTER: Final = 15.0
_PHONE_ADVICE: Final = (
    "scan the QR code with the phone's camera, keep its Bluetooth on and the phone near this "
    "computer"
)
_KEY_ADVICE: Final = "insert your security key and touch it"
_SCAN: Final = "Scan the QR code with your phone's camera"
#: What a ceremony may offer: the phone over hybrid (QR code, Bluetooth), USB security keys.
TRANSPORTS: Final = ("hybrid", "usb")
PHONE_PATH: Final = "phone"
_PHONE_HINT: Final = (
    "No phone nearby yet: after scanning the code, turn on Bluetooth on the phone and keep it "
    "near this computer (still waiting)."
)

ShowQR = Callable[[str], Awaitable[None] | None]
OnStatus = Callable[[Status], Awaitable[None] | None]
Options = str | Mapping[str, Any]
Finish = Callable[[PreparedRequest, bytes], dict[str, Any]]


async def _outcome(
    race: Race[dict[str, Any]], looking: asyncio.Task[None] | None
) -> dict[str, Any]:
    """The race's result; an error of the key discovery (`security_keys()`) ends it too."""
    waiting = asyncio.ensure_future(race.wait())
    try:
        if looking is not None:
            await asyncio.wait([waiting, looking], return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                looking.result()  # raises what `security_keys()` raised
        return await waiting
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)


class HybridClient:
    """Runs hybrid ceremonies from a desktop: QR code, BLE proximity, tunnel, one CTAP command.

    `origin` (`https://example.com`) goes into clientDataJSON and bounds the allowed RP IDs.
    `tunnel_url` (`ws://host:port`) sends every tunnel to that server instead of the one the
    phone names. `scanner_backend`/`scanner_kwargs` go to `bleak.BleakScanner`. `timeout`
    covers a whole ceremony and ends in `CeremonyTimeout`.

    Security keys: `transports` says what a ceremony offers (("hybrid",) is the phone only);
    `security_keys()` returns the `fido2.ctap.CtapDevice`s to offer (None: python-fido2's HID
    discovery), called when a ceremony starts and about every second while it runs; the
    ceremony owns and closes the devices it gets. `on_pin()` returns a key's PIN (plain or
    async); without it a key that needs its PIN is reported and skipped.
    """

    def __init__(
        self,
        origin: str,
        tunnel_url: str | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
        scanner_kwargs: dict[str, Any] | None = None,
        on_status: OnStatus | None = None,
        timeout: float = 300.0,
        *,
        phone_hint_after: float = PHONE_HINT_AFTER,
        security_keys: ListKeys | None = None,
        transports: Sequence[str] = TRANSPORTS,
        on_pin: OnPin | None = None,
    ) -> None:
        if isinstance(transports, str):
            raise ValueError(f"transports must be a sequence such as ('usb',), not {transports!r}")
        unknown = set(transports) - set(TRANSPORTS)
        if unknown or not transports:
            raise ValueError(f"transports must be some of {TRANSPORTS}, not {tuple(transports)}")
        if not timeout > 0:  # also refuses NaN, which would time out at once "within nan s"
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        cache_fido2_type_hints()  # see hybrid.webauthn.fido2_hints: 5x faster fido2 parsing
        self.origin = origin
        self.tunnel_url = normalize_base_url(tunnel_url) if tunnel_url else None
        self._plaintext_warning = warn_if_plaintext(self.tunnel_url)  # logged once, here
        self.scanner_backend = scanner_backend
        self.scanner_kwargs = scanner_kwargs
        self.on_status = on_status
        self.timeout = timeout
        self.phone_hint_after = phone_hint_after
        self.security_keys = security_keys
        self.transports = tuple(t for t in TRANSPORTS if t in transports)
        self.on_pin = on_pin
        #: Linking info the last phone sent (validated), kept in memory only.
        self.linking_info: LinkingInfo | None = None

    async def _status(self, stage: Stage, message: str, error: HybridError | None = None) -> None:
        log.info("%s", message)
        if self.on_status is not None:
            await call_maybe_async(self.on_status, Status(stage, message, error))

    async def check_bluetooth(self) -> None:
        """Raise `BluetoothUnavailable` (with a reason and what to do) unless a scan can start."""
        await check_bluetooth(self.scanner_backend, self.scanner_kwargs)

    async def get_assertion(self, options: Options, show_qr: ShowQR) -> dict[str, Any]:
        """Sign in: request options JSON in, `PublicKeyCredential` JSON out."""
        prepared = prepare_get_assertion(options, self.origin)
        return await self._ceremony(prepared, options, show_qr, finish_get_assertion)

    async def make_credential(self, options: Options, show_qr: ShowQR) -> dict[str, Any]:
        """Register: creation options JSON in, `PublicKeyCredential` JSON out."""
        prepared = prepare_make_credential(options, self.origin)
        return await self._ceremony(prepared, options, show_qr, finish_make_credential)

    async def _ceremony(
        self, prepared: PreparedRequest, options: Options, show_qr: ShowQR, finish: Finish
    ) -> dict[str, Any]:
        """Offer every transport at once; the first the user picks answers."""
        keys = KeyRequest.parse(prepared, options) if "usb" in self.transports else None
        phone = "hybrid" in self.transports
        waiting_for = " or ".join(
            name for name, offered in (("phone", phone), ("security key", keys)) if offered
        )
        finder: KeyFinder | None = None

        async def dropped(name: str, error: HybridError) -> None:
            if name == PHONE_PATH:  # phone only: its error ends the ceremony, no status first
                if keys is not None:
                    message = f"{error} Meanwhile, use a security key."
                    await self._status(Stage.PHONE_UNAVAILABLE, message, error)
                return
            if may_come_back(error):
                assert finder is not None
                finder.forget(name)
            await self._status(Stage.KEY_SKIPPED, str(error), error)

        race: Race[dict[str, Any]] = Race(dropped, more_may_come=keys is not None)
        looking: asyncio.Task[None] | None = None
        advice = " or ".join(
            text for text, offered in ((_PHONE_ADVICE, phone), (_KEY_ADVICE, keys)) if offered
        )
        async with time_limit(self.timeout, waiting_for, f"{advice}, then try again."):
            try:
                if keys is not None:
                    finder = KeyFinder(
                        self.security_keys,
                        lambda ident, device: race.start(
                            ident, self._key(device, keys, ident, race, phone)
                        ),
                    )
                    await finder.poll()
                    looking = asyncio.create_task(finder.keep_looking())
                if phone:
                    race.start(PHONE_PATH, self._phone(prepared, show_qr, finish, race, keys))
                elif not race.decided:
                    await self._status(Stage.INSERT_KEY, "Insert your security key")
                result = await _outcome(race, looking)
            finally:
                if looking is not None:
                    looking.cancel()
                    await asyncio.gather(looking, return_exceptions=True)
                await race.aclose()
                if finder is not None:
                    finder.close()
        answered = "phone" if race.winner == PHONE_PATH else "security key"
        await self._status(Stage.DONE, f"The {answered} answered")
        return result

    async def _key(
        self, device: Any, keys: KeyRequest, ident: str, race: Race[Any], phone: bool
    ) -> dict[str, Any]:
        return await key_path(
            device,
            keys,
            claim=lambda: race.claim(ident),
            status=self._status,
            on_pin=self.on_pin,
            phone_offered=lambda: phone and race.running(PHONE_PATH),
        )

    async def _phone(
        self,
        prepared: PreparedRequest,
        show_qr: ShowQR,
        finish: Finish,
        race: Race[Any],
        keys: KeyRequest | None,
    ) -> dict[str, Any]:
        prompt = f"{_SCAN}, or touch your security key" if keys else _SCAN
        async with self.session(show_qr, prepared.qr_request_type, scan_prompt=prompt) as session:
            # Built only now: what may be asked depends on what the phone's getInfo lists.
            request = prepared.ctap_request_for(session.info)
            await self._status(Stage.WAITING_FOR_USER, "Confirm on your phone")
            response = await session.transact(request)
        if not race.claim(PHONE_PATH):
            raise asyncio.CancelledError  # a key was picked first: this answer is dropped
        return finish(prepared, response)

    @contextlib.asynccontextmanager
    async def session(
        self, show_qr: ShowQR, request_type: str = "ga", *, scan_prompt: str = _SCAN
    ) -> AsyncIterator[HybridSession]:
        """Show a QR code, find the phone over BLE and open an encrypted session with it.

        Phones answer one CTAP command per session. Leaving the block sends the shutdown
        message and closes the tunnel, also on errors and cancellation. The ceremony timeout
        does not apply here: wrap it in `asyncio.timeout` yourself.
        """
        qr, qr_key = QRCode.generate(request_type)
        await self._status(Stage.CHECKING_BLUETOOTH, "Checking Bluetooth on this computer")
        # Scan before showing the QR: Bluetooth trouble is reported before a useless code, and
        # a phone may advertise within a second of scanning it.
        async with CableScanner(self.scanner_backend, self.scanner_kwargs) as scanner:
            await self._status(Stage.SHOWING_QR, scan_prompt)
            await call_maybe_async(show_qr, qr.to_url())
            eid = await self._wait_for_phone(scanner, qr.eid_key)
        await self._status(Stage.PHONE_FOUND, "Phone found nearby")
        base = self.tunnel_url or base_url(tunnel_domain(eid.domain_id))
        if self._plaintext_warning is not None:
            await self._status(Stage.CONNECTING, self._plaintext_warning)
        await self._status(Stage.CONNECTING, "Connecting to the phone")
        tunnel = await Tunnel.open_connect(base, eid.routing_id, qr.tunnel_id)
        conversation = DesktopConversation(qr, qr_key, eid)
        session = HybridSession(
            ConversationTransport(tunnel, conversation), conversation, self._accept_linking
        )
        try:
            async with peer_failures(tunnel, PHONE):
                await session.connect()
                yield session
        finally:
            await session.shutdown()
            await tunnel.close()

    async def _wait_for_phone(self, scanner: CableScanner, eid_key: bytes) -> Eid:
        await self._status(Stage.WAITING_FOR_PHONE, "Waiting for the phone")
        loop = asyncio.get_running_loop()
        hint_tasks: list[asyncio.Task[None]] = []  # a task only once the hint is due

        def hint() -> None:
            hint_tasks.append(loop.create_task(self._status(Stage.PHONE_NOT_SEEN, _PHONE_HINT)))

        timer = loop.call_later(self.phone_hint_after, hint)
        try:
            async with contextlib.aclosing(scanner.adverts()) as adverts:
                async for advert in adverts:
                    eid = decrypt_advert(eid_key, advert.service_data)
                    if eid is not None:
                        return eid
        finally:
            timer.cancel()
            for task in hint_tasks:
                await task  # a failing on_status surfaces here, not in a lost task
        raise HybridError(
            "Bluetooth scanning stopped before the phone was found: check that Bluetooth is "
            "still on on this computer and try again."
        )

    async def _accept_linking(self, linking: LinkingInfo) -> None:
        """Keep linking info whose signature the conversation verified."""
        self.linking_info = linking
        name = shown(linking.authenticator_name, "the phone")  # the phone chose it
        await self._status(Stage.LINKED, f"Linked with {name}")
