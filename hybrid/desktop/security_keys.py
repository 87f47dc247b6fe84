"""USB security keys in a `HybridClient` ceremony, driven by python-fido2's `Fido2Client`.

python-fido2 does the CTAPHID, PIN protocol and extension work (prf → hmac-secret, credProtect,
largeBlob, credProps); this module feeds it the ceremony's own clientData, bridges its
`UserInteraction` to the application's `on_status`/`on_pin`, runs it on a thread of its own and
turns its errors into the project's. A key that needs its PIN is first *picked* with a touch
(authenticatorSelection), as browsers do, so the PIN is only asked once nothing else races.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import struct
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

from fido2.client import (
    ClientDataCollector,
    ClientError,
    Fido2Client,
    PinRequiredError,
    UserInteraction,
)
from fido2.ctap import CtapDevice, CtapError
from fido2.ctap2.base import Info
from fido2.ctap2.pin import ClientPin
from fido2.hid import ConnectionFailure
from fido2.webauthn import (
    AuthenticatorSelectionCriteria,
    CollectedClientData,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
    UserVerificationRequirement,
)

from hybrid.ctap import CtapStatus, error_for_status
from hybrid.desktop.key_extensions import key_extensions
from hybrid.desktop.race import in_thread
from hybrid.errors import CtapStatusError, HybridError, SecurityKeyError, SecurityKeyReason
from hybrid.status import Stage
from hybrid.text import shown
from hybrid.webauthn.key_results import key_assertion_json, key_registration_json
from hybrid.webauthn.options import parse_creation_options, parse_request_options
from hybrid.webauthn.prepare import PreparedRequest

log = logging.getLogger(__name__)

T = TypeVar("T")
OnPin = Callable[[], "str | Awaitable[str | None] | None"]
#: Reports a status from a key's thread; returns once `on_status` has run.
Emit = Callable[[Stage, str], None]
Options = PublicKeyCredentialCreationOptions | PublicKeyCredentialRequestOptions

_UV_KINDS: Final = ("uv", "clientPin", "bioEnroll")
_PIN_ADVICE: Final = {
    CtapStatus.PIN_INVALID: "The security key's PIN is wrong: try again with the right PIN.",
    CtapStatus.PIN_AUTH_BLOCKED: (
        "Too many wrong PINs in a row: unplug the security key, plug it back in and try again."
    ),
    CtapStatus.PIN_BLOCKED: (
        "The security key's PIN is blocked after too many wrong PINs: reset the key with its "
        "maker's tool (this deletes its passkeys), or use your phone."
    ),
    CtapStatus.PIN_POLICY_VIOLATION: (
        "The security key does not accept this PIN (too short?): check it and try again."
    ),
}


def device_id(device: CtapDevice) -> str:
    """A name for the key that stays the same while it is plugged in (its HID path)."""
    path = getattr(getattr(device, "descriptor", None), "path", None)
    return f"usb:{path}" if path is not None else f"key:{id(device):x}"


def device_name(device: CtapDevice) -> str:
    product = getattr(getattr(device, "descriptor", None), "product_name", None)
    return shown(product, "security key") if isinstance(product, str) else "security key"


@dataclass(frozen=True)
class KeyRequest:
    """The ceremony as python-fido2 wants it, with the clientData the phone path uses."""

    prepared: PreparedRequest
    options: Options

    @classmethod
    def parse(cls, prepared: PreparedRequest, options: Any) -> KeyRequest:
        """No `timeout` (the ceremony has its own), the effective RP ID filled in, and the
        registration's userVerification as prepared: python-fido2 passes a credProtect level
        on as it is, so "required" for "userVerificationRequired" must reach it from here (it
        then uses the PIN, via `on_pin`, or skips a key that cannot verify)."""
        parsed: Options
        if prepared.kind == "create":
            creation = parse_creation_options(options)
            selection = creation.authenticator_selection or AuthenticatorSelectionCriteria()
            required = UserVerificationRequirement.REQUIRED
            if (
                prepared.user_verification == required.value
                and selection.user_verification != required
            ):
                selection = replace(selection, user_verification=required)
                creation = replace(creation, authenticator_selection=selection)
            parsed = replace(creation, timeout=None)
        else:
            parsed = replace(parse_request_options(options), timeout=None, rp_id=prepared.rp_id)
        return cls(prepared, parsed)

    def for_key(self, info: Info, name: str) -> Options:
        """Browsers' rule: "preferred" UV on a key without UV set up means no UV."""
        options = self.options
        if isinstance(options, PublicKeyCredentialCreationOptions):
            selection = options.authenticator_selection or AuthenticatorSelectionCriteria()
            wanted = selection.user_verification
        else:
            wanted = options.user_verification
        if any(info.options.get(kind) for kind in _UV_KINDS):
            return options
        if wanted == UserVerificationRequirement.REQUIRED:
            raise SecurityKeyError(
                f"This security key has no PIN, and {self.prepared.rp_id} requires one: set a "
                "PIN on the key with its maker's tool, or use your phone.",
                reason=SecurityKeyReason.UV_NOT_CONFIGURED,
                device=name,
            )
        discouraged = UserVerificationRequirement.DISCOURAGED
        if isinstance(options, PublicKeyCredentialCreationOptions):
            return replace(
                options, authenticator_selection=replace(selection, user_verification=discouraged)
            )
        return replace(options, user_verification=discouraged)


class _OurClientData(ClientDataCollector):
    """The prepared clientData: same origin, challenge and RP ID as the phone path."""

    def __init__(self, prepared: PreparedRequest) -> None:
        self._prepared = prepared

    def collect_client_data(self, options: Options) -> tuple[CollectedClientData, str]:
        return self._prepared.client_data, self._prepared.rp_id


async def _resolve(value: Awaitable[T]) -> T:
    return await value


class _CallbackFailed(Exception):
    """The application's `on_status` or `on_pin` raised on a key's thread: `error` goes to the
    caller as it is, not mistaken for a bad reply from the key."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        super().__init__(repr(error))


def _callback(call: Callable[[], T]) -> T:
    try:
        return call()
    except Exception as exc:
        raise _CallbackFailed(exc) from exc


class KeyCeremony(UserInteraction):
    """One key's part in a ceremony; `run()` blocks (call it on a worker thread).

    `claim()` makes this key the ceremony's pick (False: another path won); `phone_offered()`
    says whether the prompt should mention the QR code.
    """

    def __init__(
        self,
        device: CtapDevice,
        request: KeyRequest,
        *,
        loop: asyncio.AbstractEventLoop,
        cancel: threading.Event,
        claim: Callable[[], bool],
        emit: Emit,
        on_pin: OnPin | None,
        phone_offered: Callable[[], bool],
    ) -> None:
        self._device = device
        self._request = request
        self._loop = loop
        self._cancel = cancel
        self._claim = claim
        self._emit = emit
        self._on_pin = on_pin
        self._phone_offered = phone_offered
        self._client: Fido2Client | None = None
        self._picked = False
        self.name = device_name(device)

    def run(self) -> dict[str, Any]:
        """The credential JSON, or the project's error for what went wrong."""
        prepared = self._request.prepared
        try:
            self._client = client = Fido2Client(
                self._device, _OurClientData(prepared), self, extensions=key_extensions()
            )
            options = self._request.for_key(client.info, self.name)
            if isinstance(options, PublicKeyCredentialCreationOptions):
                registration = client.make_credential(options, event=self._cancel)
                return key_registration_json(prepared, registration)
            return key_assertion_json(prepared, client.get_assertion(options, event=self._cancel))
        except _CallbackFailed as exc:
            raise exc.error from None  # the application's own bug, not the key's
        except PinRequiredError as exc:
            raise SecurityKeyError(
                f"This security key ({self.name}) needs its PIN: sign in again and enter the "
                "PIN when asked, or use another key or your phone.",
                reason=SecurityKeyReason.PIN_REQUIRED,
                device=self.name,
            ) from exc
        except ClientError as exc:
            raise self._client_error(exc) from exc
        except CtapError as exc:
            raise self._status_error(exc.code) from exc
        except OSError as exc:
            raise self._removed() from exc
        except ConnectionFailure as exc:  # a report for another channel: a second handle
            raise SecurityKeyError(
                f"Another handle on the security key ({self.name}) talked to it at the same "
                "time: close other programs using it and try again.",
                reason=SecurityKeyReason.DISTURBED,
                device=self.name,
            ) from exc
        except (ValueError, TypeError, KeyError, IndexError, struct.error) as exc:
            # python-fido2 parsing a reply that is not valid CTAP2 (the key is the peer here)
            raise SecurityKeyError(
                f"The security key ({self.name}) sent a reply that is not valid CTAP2 "
                f"({type(exc).__name__}): use another key or your phone.",
                device=self.name,
            ) from exc

    def _removed(self) -> SecurityKeyError:
        # Once picked it is the ceremony's only path: it ends, so a new attempt is needed.
        then = "and try again" if self._picked else "to use it"
        return SecurityKeyError(
            f"The security key ({self.name}) was removed: plug it back in {then}.",
            reason=SecurityKeyReason.REMOVED,
            device=self.name,
        )

    def _status_error(self, status: int) -> CtapStatusError:
        rp_id = self._request.prepared.rp_id
        if status in _PIN_ADVICE:
            return CtapStatusError(status, _PIN_ADVICE[CtapStatus(status)], rp_id=rp_id)
        return error_for_status(status, rp_id, device="security key")

    def _client_error(self, exc: ClientError) -> HybridError:
        if isinstance(exc.cause, CtapError):
            return self._status_error(exc.cause.code)
        if isinstance(exc.cause, OSError):
            return self._removed()
        unsupported = exc.code == ClientError.ERR.CONFIGURATION_UNSUPPORTED
        return SecurityKeyError(
            f"This security key ({self.name}) cannot do what "
            f"{self._request.prepared.rp_id} asks ({exc.code.name}): use another key or your "
            "phone.",
            reason=SecurityKeyReason.UNSUPPORTED if unsupported else SecurityKeyReason.OTHER,
            device=self.name,
        )

    # --- UserInteraction (called by Fido2Client on this key's thread) --------------------------

    def prompt_up(self) -> None:
        also = " or scan the QR code" if self._phone_offered() and not self._picked else ""
        self._emit(Stage.TOUCH_KEY, f"Touch your security key ({self.name}){also}")

    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        if self._on_pin is None:
            return None  # Fido2Client raises PinRequiredError: reported, key skipped
        if not self._picked:
            also = " or scan the QR code" if self._phone_offered() else ""
            self._emit(
                Stage.TOUCH_KEY,
                f"Touch your security key ({self.name}) to use it, it needs its PIN{also}",
            )
            assert self._client is not None
            self._client.selection(self._cancel)
            if not self._claim():
                raise CtapError(CtapError.ERR.KEEPALIVE_CANCEL)  # another path won meanwhile
            self._picked = True
        self._emit(Stage.ENTER_PIN, f"Enter the PIN of your security key ({self.name})")
        return self._ask_pin(self._on_pin)

    def _ask_pin(self, on_pin: OnPin) -> str | None:
        """A plain `on_pin` runs on this thread; an async one on the event loop."""
        value = _callback(on_pin)
        if inspect.isawaitable(value):
            future = asyncio.run_coroutine_threadsafe(_resolve(value), self._loop)
            while not concurrent.futures.wait([future], timeout=0.05).done:
                if self._cancel.is_set():
                    future.cancel()
                    raise CtapError(CtapError.ERR.KEEPALIVE_CANCEL)
            value = _callback(future.result)
        if value is not None and not isinstance(value, str):
            kind = type(value).__name__
            raise _CallbackFailed(TypeError(f"on_pin must return a str or None, not {kind}"))
        return value or None


async def key_path(
    device: CtapDevice,
    request: KeyRequest,
    *,
    claim: Callable[[], bool],
    status: Callable[[Stage, str], Coroutine[Any, Any, None]],
    on_pin: OnPin | None,
    phone_offered: Callable[[], bool],
) -> dict[str, Any]:
    """Run one key's part of the ceremony on its own thread, cancelled with the task."""
    loop = asyncio.get_running_loop()
    cancel = threading.Event()

    def emit(stage: Stage, message: str) -> None:
        _callback(asyncio.run_coroutine_threadsafe(status(stage, message), loop).result)

    ceremony = KeyCeremony(
        device,
        request,
        loop=loop,
        cancel=cancel,
        claim=claim,
        emit=emit,
        on_pin=on_pin,
        phone_offered=phone_offered,
    )
    return await in_thread(ceremony.run, cancel, f"hybrid-security-key {device_id(device)}")
