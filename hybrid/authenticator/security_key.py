"""A software USB security key: real CTAPHID, clientPin protocol 2, and a pluggable passkey core.

`SoftwareSecurityKey` is what a desktop test or demo plugs in instead of hardware: python-fido2's
`CtapHidDevice` talks to it over `VirtualCtapHid`, exactly as to a key on hidraw. The key itself
answers getInfo, clientPIN and authenticatorSelection, checks pinUvAuthParam (that is how UV is
earned: never claimed without a verified PIN token), and waits for a touch. The passkey work
(makeCredential/getAssertion) is delegated to a `CredentialCore`; `with_store` plugs in the
passkey logic the phone uses too (`key_core.StoreCredentialCore` over a `CredentialStore`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from fido2 import cbor
from fido2.ctap import STATUS
from fido2.hid import CtapHidDevice
from fido2.hid.base import HidDescriptor

from hybrid.authenticator.client_pin import (
    MIN_PIN_LENGTH,
    PIN_PROTOCOL,
    ClientPinAuthenticator,
    Permission,
)
from hybrid.authenticator.hmac_secret import HMAC_SECRET, read_input
from hybrid.authenticator.key_core import StoreCredentialCore
from hybrid.authenticator.security_key_hid import (
    MAX_MESSAGE_SIZE,
    HidCommand,
    VirtualCtapHid,
    VirtualHidConnection,
    hid_descriptor,
)
from hybrid.authenticator.store import CredentialStore
from hybrid.ctap import CtapCommand, CtapStatus, decode_cbor
from hybrid.errors import CtapStatusError, ProtocolError

logger = logging.getLogger(__name__)

DEFAULT_TOUCH_TIMEOUT: Final = 30.0
_TOUCH_POLL: Final = 0.02  # how often a touch wait looks for CANCEL

#: Confirms user presence (a touch): returns once touched, raises `CtapStatusError` otherwise
#: (KEEPALIVE_CANCEL, USER_ACTION_TIMEOUT or OPERATION_DENIED).
PresenceCheck = Callable[[], None]
#: The button: an Event someone sets (consumed by each touch), or a callable that blocks until
#: the user decides and returns True for a touch, False for "no".
Touch = threading.Event | Callable[[], bool]


class CredentialCore(Protocol):
    """The passkey logic behind the key (`StoreCredentialCore` is the project's own).

    `params` is the request's CBOR map with the PIN fields (pinUvAuthParam/Protocol) and the
    `uv` option already removed: the key has checked them (and a getAssertion's hmac-secret
    input is already an `HmacSecretInput`: saltAuth checked, salts decrypted).
    `user_verified` is True only when a PIN token verified. The core calls
    `confirm_presence()` before it signs or creates anything (unless a getAssertion says
    `up: false`, as python-fido2's silent allow-list pre-flight does), sets the UP flag only
    after it returned and the UV flag only if `user_verified`, and returns the response map
    or raises `CtapStatusError`. The key advertises `rk: true`, so the
    core must answer a getAssertion without allowList from its discoverable credentials.
    """

    @property
    def aaguid(self) -> bytes: ...

    @property
    def algorithms(self) -> Sequence[int]: ...

    @property
    def extensions(self) -> Sequence[str]: ...

    def make_credential(
        self, params: dict[Any, Any], user_verified: bool, confirm_presence: PresenceCheck
    ) -> dict[int, Any]: ...

    def get_assertion(
        self, params: dict[Any, Any], user_verified: bool, confirm_presence: PresenceCheck
    ) -> dict[int, Any]: ...


def _fail(status: CtapStatus, why: str) -> CtapStatusError:
    return CtapStatusError(status, f"{status.name}: {why}")


def _typed(value: Any, kind: type, what: str) -> Any:
    if value is None:
        raise _fail(CtapStatus.MISSING_PARAMETER, f"{what} is missing")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _fail(CtapStatus.CBOR_UNEXPECTED_TYPE, f"{what} must be {kind.__name__}")
    return value


class SoftwareSecurityKey:
    """A virtual FIDO2 USB key; `open_device()` gives python-fido2's `CtapHidDevice` for it.

    `touch` is the key's button (None: touched at once, for demos and tests); `pin` sets a PIN
    as if the user had set it before. Closing or `unplug()`ing stops its worker thread.
    """

    def __init__(
        self,
        core: CredentialCore,
        *,
        touch: Touch | None = None,
        pin: str | None = None,
        touch_timeout: float = DEFAULT_TOUCH_TIMEOUT,
        descriptor: HidDescriptor | None = None,
    ) -> None:
        self._core = core
        self._touch = touch
        self._touch_timeout = touch_timeout
        self.client_pin = ClientPinAuthenticator(pin)
        self.descriptor = descriptor or hid_descriptor()
        self.hid = VirtualCtapHid(self)
        self._listed: tuple[CtapHidDevice, VirtualHidConnection] | None = None

    @classmethod
    def with_store(
        cls,
        store: str | os.PathLike[str] | CredentialStore | None = None,
        *,
        pin: str | None = None,
        touch: Touch | None = None,
        touch_timeout: float = DEFAULT_TOUCH_TIMEOUT,
    ) -> SoftwareSecurityKey:
        """A key whose passkeys live in `store` (a JSON path, a store, or None: memory)."""
        return cls(StoreCredentialCore(store), touch=touch, pin=pin, touch_timeout=touch_timeout)

    @property
    def core(self) -> CredentialCore:
        return self._core

    def __repr__(self) -> str:
        state = "plugged in" if self.hid.plugged_in else "unplugged"
        return f"SoftwareSecurityKey({self.descriptor.product_name!r}, {state})"

    def __enter__(self) -> SoftwareSecurityKey:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connect(self) -> VirtualHidConnection:
        """Open a raw HID connection (a `fido2.hid.base.CtapHidConnection`)."""
        return self.hid.open()

    def open_device(self) -> CtapHidDevice:
        """python-fido2's real CTAPHID host on a fresh connection (it sends INIT)."""
        return CtapHidDevice(self.descriptor, self.connect())

    def plugged_devices(self) -> list[CtapHidDevice]:
        """What HID discovery lists for this key, for `HybridClient(security_keys=...)`.

        One handle while plugged in, the same until someone closes it: a second handle would
        disturb the first, because (as with hidraw) every handle sees every report and
        python-fido2 fails on a report for another channel. None while unplugged.
        """
        if not self.hid.plugged_in:
            return []
        listed = self._listed
        if listed is None or listed[1].closed or listed[1] not in self.hid.connections:
            connection = self.connect()
            listed = self._listed = (CtapHidDevice(self.descriptor, connection), connection)
        return [listed[0]]

    def unplug(self) -> None:
        """Pull the key out mid-whatever: every read and write now fails with OSError."""
        self.hid.unplug()

    def replug(self) -> None:
        """Unplug and plug back in: a power cycle (new channels, key agreement key and token).

        PIN retries survive it; a PIN entry blocked by three wrong PINs in a row is open again.
        """
        self.hid.unplug()
        self.client_pin.power_cycle()
        self.hid = VirtualCtapHid(self)

    def close(self) -> None:
        self.hid.close()

    # --- CtapHandler ---------------------------------------------------------------------------

    def handle_cbor(self, request: bytes, command: HidCommand) -> bytes:
        """Answer one CTAP2 command with `status ‖ CBOR`; never raises."""
        try:
            return self._dispatch(request, command)
        except CtapStatusError as exc:
            logger.debug("security key refused a request: %s", exc)
            return bytes([exc.status])
        except Exception as exc:  # a key answers, it does not crash
            logger.error("unexpected %s in the security key", type(exc).__name__)
            return bytes([CtapStatus.OTHER])

    def get_info(self) -> dict[int, Any]:
        """The authenticatorGetInfo map: what python-fido2 reads to decide how to talk to us."""
        info: dict[int, Any] = {
            1: ["FIDO_2_0", "FIDO_2_1"],
            3: self._core.aaguid,
            4: {
                "rk": True,
                "up": True,
                "clientPin": self.client_pin.pin_is_set,
                "pinUvAuthToken": True,
            },
            5: MAX_MESSAGE_SIZE,
            6: [PIN_PROTOCOL],
            9: ["usb"],
            10: [{"alg": alg, "type": "public-key"} for alg in self._core.algorithms],
            0x0D: MIN_PIN_LENGTH,
        }
        if self._core.extensions:
            info[2] = list(self._core.extensions)
        return info

    def _dispatch(self, request: bytes, command: HidCommand) -> bytes:
        if not request:
            raise _fail(CtapStatus.INVALID_LENGTH, "the request has no command byte")
        code, body = request[0], request[1:]
        if code in (CtapCommand.GET_INFO, CtapCommand.SELECTION):
            if body:
                raise _fail(CtapStatus.INVALID_LENGTH, "this command takes no parameters")
            if code == CtapCommand.SELECTION:
                self._wait_for_touch(command)
                return bytes([CtapStatus.SUCCESS])
            return bytes([CtapStatus.SUCCESS]) + cbor.encode(self.get_info())
        if code == CtapCommand.GET_NEXT_ASSERTION:
            raise _fail(CtapStatus.NOT_ALLOWED, "there are no further assertions")
        if code not in (
            CtapCommand.CLIENT_PIN,
            CtapCommand.MAKE_CREDENTIAL,
            CtapCommand.GET_ASSERTION,
        ):
            raise _fail(CtapStatus.INVALID_COMMAND, f"command 0x{code:02x} is not supported")
        params = self._params(body)
        if code == CtapCommand.CLIENT_PIN:
            response = self.client_pin.handle(params)
        else:
            response = self._ceremony(code == CtapCommand.MAKE_CREDENTIAL, params, command)
        return bytes([CtapStatus.SUCCESS]) + (cbor.encode(response) if response else b"")

    @staticmethod
    def _params(body: bytes) -> dict[Any, Any]:
        if not body:
            raise _fail(CtapStatus.MISSING_PARAMETER, "the request has no parameters")
        try:
            params = decode_cbor(body)
        except ProtocolError as exc:
            raise _fail(CtapStatus.INVALID_CBOR, "the request is not valid CBOR") from exc
        if not isinstance(params, dict):
            raise _fail(CtapStatus.CBOR_UNEXPECTED_TYPE, "the request must be a CBOR map")
        return params

    def _ceremony(
        self, make_credential: bool, params: dict[Any, Any], command: HidCommand
    ) -> dict[int, Any]:
        """PIN/UV checks of CTAP 2.1 §6.1.2 and §6.2.2, then the core does the passkey work."""
        if make_credential:
            hash_key, param_key, protocol_key, options_key = 1, 8, 9, 7
            permission = Permission.MAKE_CREDENTIAL
            rp_id = _typed(_typed(params.get(2), dict, "rp").get("id"), str, "rp id")
        else:
            hash_key, param_key, protocol_key, options_key = 2, 6, 7, 5
            permission = Permission.GET_ASSERTION
            rp_id = _typed(params.get(1), str, "rpId")
        client_data_hash = _typed(params.get(hash_key), bytes, "clientDataHash")
        options = dict(_typed(params.get(options_key, {}), dict, "options"))
        pin_is_set = self.client_pin.pin_is_set
        auth_param = params.get(param_key)

        if auth_param is not None:
            _typed(auth_param, bytes, "pinUvAuthParam")
            if not auth_param:  # "touch to select" probe of CTAP 2.0 platforms
                self._wait_for_touch(command)
                raise _fail(
                    CtapStatus.PIN_INVALID if pin_is_set else CtapStatus.PIN_NOT_SET,
                    "an empty pinUvAuthParam only asks for a touch",
                )
            protocol = _typed(params.get(protocol_key), int, "pinUvAuthProtocol")
            if protocol != PIN_PROTOCOL:
                raise _fail(CtapStatus.INVALID_PARAMETER, "only PIN/UV auth protocol 2")
            user_verified = self.client_pin.verify_request(
                client_data_hash, auth_param, permission, rp_id
            )
        elif options.get("uv") is True or (make_credential and pin_is_set):
            if not pin_is_set:
                raise _fail(CtapStatus.INVALID_OPTION, "this key has no built-in UV; set a PIN")
            raise _fail(CtapStatus.PUAT_REQUIRED, "this key has a PIN: send a pinUvAuthParam")
        else:
            user_verified = False

        options.pop("uv", None)
        core_params = {k: v for k, v in params.items() if k not in (param_key, protocol_key)}
        extensions = params.get(4)
        if not make_credential and isinstance(extensions, dict) and HMAC_SECRET in extensions:
            # The key holds the key agreement key: it checks and decrypts the salts here.
            given = read_input(extensions[HMAC_SECRET], self.client_pin)
            core_params[4] = {**extensions, HMAC_SECRET: given}
        core_params.pop(options_key, None)
        if options:
            core_params[options_key] = options

        touched: list[bool] = []

        def confirm_presence() -> None:
            self._wait_for_touch(command)
            touched.append(True)

        action = self._core.make_credential if make_credential else self._core.get_assertion
        response = action(core_params, user_verified, confirm_presence)
        if user_verified and touched:  # a silent (up=false) pre-flight does not spend the token
            self.client_pin.consume_token_permissions()
        return response

    def _wait_for_touch(self, command: HidCommand) -> None:
        """Block until the button is touched; KEEPALIVE says UPNEEDED meanwhile."""
        cancelled = command.cancelled
        if cancelled.is_set():
            raise _fail(CtapStatus.KEEPALIVE_CANCEL, "the host cancelled")
        touch = self._touch
        if touch is None:
            return
        command.keepalive_status = STATUS.UPNEEDED
        try:
            if isinstance(touch, threading.Event):
                deadline = time.monotonic() + self._touch_timeout
                while not touch.wait(_TOUCH_POLL):
                    if cancelled.is_set():
                        raise _fail(CtapStatus.KEEPALIVE_CANCEL, "the host cancelled")
                    if time.monotonic() >= deadline:
                        raise _fail(CtapStatus.USER_ACTION_TIMEOUT, "nobody touched the key")
                touch.clear()  # one touch confirms one operation
                touched = True
            else:
                touched = touch()
            if cancelled.is_set():
                raise _fail(CtapStatus.KEEPALIVE_CANCEL, "the host cancelled")
            if not touched:
                raise _fail(CtapStatus.OPERATION_DENIED, "the user declined on the key")
        finally:
            command.keepalive_status = STATUS.PROCESSING
