"""One error hierarchy for the whole project.

Every message says what went wrong *and* what the user can do next, because these errors reach
people at a terminal or in an application's UI.
"""

from __future__ import annotations

import enum


class HybridError(Exception):
    """Root of every error this project raises on purpose."""


class ProtocolReason(enum.Enum):
    """Which rule of the hybrid conversation the other side broke (`ProtocolError.reason`)."""

    MALFORMED = "malformed"  # bytes that do not parse: QR code, advert, handshake, record, CBOR
    UNEXPECTED_MESSAGE = "unexpected_message"  # a message type not allowed at this point
    EMPTY_CTAP_MESSAGE = "empty_ctap_message"
    TOO_MANY_UPDATES = "too_many_updates"
    TEXT_FRAME = "text_frame"  # the tunnel carried a WebSocket text message
    AUTHENTICATION_FAILED = "authentication_failed"  # handshake, record or linking signature


class ProtocolError(HybridError):
    """Bytes that break the hybrid protocol: a malformed QR code, advert, handshake or record.

    `detail` says what was wrong, `reason` which rule was broken; `peer` ("phone" or
    "computer") is set once the error is known to come from the other side of a session, and
    then the message also says what to do.
    """

    def __init__(
        self,
        detail: str,
        *,
        reason: ProtocolReason = ProtocolReason.MALFORMED,
        peer: str | None = None,
    ) -> None:
        self.detail = detail
        self.reason = reason
        self.peer = peer
        if peer is None:
            message = detail
        else:
            message = (
                f"The {peer} broke the hybrid protocol ({detail}): start again with a new QR "
                f"code; if it keeps happening, this {peer}'s hybrid support is not compatible."
            )
        super().__init__(message)

    def from_peer(self, peer: str) -> ProtocolError:
        """The same error, attributed to `peer` (its message then says what to do)."""
        if self.peer is not None:
            return self
        return type(self)(self.detail, reason=self.reason, peer=peer)


class TunnelError(HybridError):
    """The WebSocket tunnel could not be opened, or it closed before the ceremony finished.

    `http_status` is the tunnel server's refusal status (404, 409, 410, ...) when it refused.
    """

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        self.http_status = http_status
        super().__init__(message)


class PeerReason(enum.Enum):
    """How the other side broke off (`PeerError.reason`)."""

    CLOSED = "closed"  # the tunnel closed before the conversation finished
    ENDED_WITHOUT_ANSWER = "ended_without_answer"  # the phone sent shutdown instead of a reply
    NO_CTAP = "no_ctap"  # the phone offers no CTAP over hybrid
    ENDED_WITHOUT_REQUEST = "ended_without_request"  # the desktop hung up before asking
    OTHER = "other"


class PeerError(HybridError):
    """The other side (phone or desktop) broke off the ceremony or behaved unexpectedly.

    `reason` says how; `close_code` is the WebSocket close code when the tunnel closed.
    """

    def __init__(
        self, message: str, *, reason: PeerReason = PeerReason.OTHER, close_code: int | None = None
    ) -> None:
        self.reason = reason
        self.close_code = close_code
        super().__init__(message)


class SessionSpent(HybridError):
    """A second CTAP command on a session: phones answer exactly one per session."""

    def __init__(self) -> None:
        super().__init__(
            "Phones answer only one command per session: start a new session (a new QR code) "
            "for the next request."
        )


class PhoneLacksFeature(HybridError):
    """The site needs something the phone's getInfo does not offer; nothing was sent to it.

    `feature` names what is missing: "uv" (user verification) or an extension ("credProtect").
    """

    def __init__(self, feature: str, message: str) -> None:
        self.feature = feature
        super().__init__(message)


class UserVerificationUnavailable(PhoneLacksFeature):
    """userVerification "required", but the phone's getInfo has no `uv`: it cannot verify."""

    def __init__(self) -> None:
        super().__init__(
            "uv",
            "The site requires user verification, and this phone cannot verify you: turn on "
            "the phone's screen lock, or use another phone or a security key.",
        )


class StoreError(HybridError):
    """A credential store file is unreadable, corrupt, foreign or cannot be written."""


class AdvertiserReason(enum.Enum):
    """Why an advertiser failed (`AdvertiserError.reason`)."""

    BAD_PAYLOAD = "bad_payload"  # not bytes, empty, or longer than an advert carries
    BAD_ADAPTER_NAME = "bad_adapter_name"
    NO_ADAPTER = "no_adapter"
    NOT_PERMITTED = "not_permitted"  # BlueZ: adapter off or busy advertising
    TOO_LONG = "too_long"  # the adapter refused the advert's length
    ALREADY_REGISTERED = "already_registered"
    BLUETOOTH_UNAVAILABLE = "bluetooth_unavailable"  # `bluetooth` says why
    BAD_TRANSPORT = "bad_transport"  # bumble: not an HCI transport spec
    CANNOT_OPEN = "cannot_open"
    DID_NOT_START = "did_not_start"
    REFUSED = "refused"
    DID_NOT_STOP = "did_not_stop"
    NOT_INSTALLED = "not_installed"  # the optional package is missing
    OTHER = "other"


class AdvertiserError(HybridError):
    """A BLE advertiser could not start or keep advertising.

    `reason` says why; `bluetooth` is the `BluetoothReason` when Bluetooth itself is the cause.
    """

    def __init__(
        self,
        message: str,
        reason: AdvertiserReason = AdvertiserReason.OTHER,
        *,
        bluetooth: BluetoothReason | None = None,
    ) -> None:
        self.reason = reason
        self.bluetooth = bluetooth
        super().__init__(message)


class CeremonyTimeout(HybridError, TimeoutError):
    """The ceremony did not finish within its time limit.

    `waiting_for` names what did not happen in time (e.g. "phone", "computer"), `seconds`
    the limit that ran out.
    """

    def __init__(
        self, message: str, *, waiting_for: str = "other side", seconds: float | None = None
    ) -> None:
        self.waiting_for = waiting_for
        self.seconds = seconds
        super().__init__(message)


class BluetoothReason(enum.Enum):
    """Why Bluetooth cannot be used: bleak's reasons plus the Linux cases bleak does not map."""

    NO_BLUETOOTH = "no_bluetooth"
    NO_BLE_CENTRAL_ROLE = "no_ble_central_role"
    POWERED_OFF = "powered_off"
    DENIED_BY_USER = "denied_by_user"
    DENIED_BY_SYSTEM = "denied_by_system"
    DENIED_BY_UNKNOWN = "denied_by_unknown"
    NO_DBUS = "no_dbus"
    BLUEZ_NOT_RUNNING = "bluez_not_running"
    DBUS_PERMISSION_DENIED = "dbus_permission_denied"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"


_BLUETOOTH_ADVICE: dict[BluetoothReason, str] = {
    BluetoothReason.NO_BLUETOOTH: (
        "This computer has no Bluetooth adapter: plug in a Bluetooth LE adapter, or sign in "
        "on a computer that has Bluetooth."
    ),
    BluetoothReason.NO_BLE_CENTRAL_ROLE: (
        "This computer's Bluetooth adapter cannot scan for Bluetooth LE devices: use an adapter "
        "that supports Bluetooth LE (4.0 or later)."
    ),
    BluetoothReason.POWERED_OFF: (
        "Bluetooth is turned off on this computer: turn it on and try again."
    ),
    BluetoothReason.DENIED_BY_USER: (
        "This application is not allowed to use Bluetooth: allow it in the system's privacy "
        "settings (Bluetooth) and try again."
    ),
    BluetoothReason.DENIED_BY_SYSTEM: (
        "The system does not let this application use Bluetooth (policy or parental "
        "controls): ask your administrator to allow it."
    ),
    BluetoothReason.DENIED_BY_UNKNOWN: (
        "Bluetooth access was denied: allow this application to use Bluetooth in the system "
        "settings and try again."
    ),
    BluetoothReason.NO_DBUS: (
        "The system D-Bus is not reachable (no /run/dbus/system_bus_socket), so BlueZ cannot "
        "be used: run on a host with D-Bus, or mount the system bus into the container."
    ),
    BluetoothReason.BLUEZ_NOT_RUNNING: (
        "The Bluetooth service (bluetoothd, BlueZ) is not running: start it with "
        "'sudo systemctl start bluetooth' and try again."
    ),
    BluetoothReason.DBUS_PERMISSION_DENIED: (
        "This user may not talk to BlueZ over D-Bus: add the user to the 'bluetooth' group "
        "(or fix the D-Bus policy) and log in again."
    ),
    BluetoothReason.TIMEOUT: (
        "Bluetooth did not answer in time (a permission prompt may be waiting): answer the "
        "prompt or check the Bluetooth settings, then try again."
    ),
    BluetoothReason.UNKNOWN: (
        "Bluetooth cannot be used on this computer: check that it is on and that this "
        "application may use it, then try again."
    ),
}


class BluetoothUnavailable(HybridError):
    """Bluetooth cannot be used on this computer; `reason` says why."""

    def __init__(self, reason: BluetoothReason, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        message = _BLUETOOTH_ADVICE[reason]
        if detail:
            message = f"{message} ({detail})"
        super().__init__(message)


class CtapStatusError(HybridError):
    """The authenticator answered with a CTAP2 error `status` (for the site `rp_id`, if known)."""

    def __init__(
        self, status: int, message: str | None = None, *, rp_id: str | None = None
    ) -> None:
        self.status = status
        self.rp_id = rp_id
        super().__init__(message or f"The phone answered with CTAP error 0x{status:02x}.")


class NoCredentials(CtapStatusError):
    """The phone has no passkey for this site (CTAP2_ERR_NO_CREDENTIALS)."""


class OperationDenied(CtapStatusError):
    """The user declined on the phone (CTAP2_ERR_OPERATION_DENIED / NOT_ALLOWED)."""


class CredentialExcluded(CtapStatusError):
    """The phone already holds a passkey from the exclude list (CTAP2_ERR_CREDENTIAL_EXCLUDED)."""


class UnsupportedAlgorithm(CtapStatusError):
    """The phone supports none of the site's algorithms (CTAP2_ERR_UNSUPPORTED_ALGORITHM)."""


class SecurityKeyReason(enum.Enum):
    """Why a USB security key was left out of a ceremony (`SecurityKeyError.reason`)."""

    PIN_REQUIRED = "pin_required"  # the key needs its PIN and none was given
    REMOVED = "removed"  # the key was pulled out (or stopped answering) mid-ceremony
    DISTURBED = "disturbed"  # another handle on the key talked to it mid-ceremony (hidraw)
    UV_NOT_CONFIGURED = "uv_not_configured"  # the site requires UV; the key has no PIN set
    UNSUPPORTED = "unsupported"  # the key cannot do what the site asks (algorithm, rk, ...)
    OTHER = "other"


class SecurityKeyError(HybridError):
    """A USB security key could not take part; `reason` says why, `ctap_status` the key's code.

    `device` names the key (its product name) when known.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: SecurityKeyReason = SecurityKeyReason.OTHER,
        ctap_status: int | None = None,
        device: str | None = None,
    ) -> None:
        self.reason = reason
        self.ctap_status = ctap_status
        self.device = device
        super().__init__(message)


class BridgeReason(enum.Enum):
    """Why the bridge (`python -m hybrid.bridge`) cannot be the virtual security key."""

    NO_UHID = "no_uhid"  # /dev/uhid is missing: the kernel has no uhid (module not loaded)
    UHID_DENIED = "uhid_denied"  # /dev/uhid exists but this user may not open it
    UHID_FAILED = "uhid_failed"  # the kernel refused the device or /dev/uhid broke
    NO_DISPLAY = "no_display"  # the QR window needs a display and there is none


_BRIDGE_ADVICE: dict[BridgeReason, str] = {
    BridgeReason.NO_UHID: (
        "/dev/uhid is missing, so no virtual security key can be made: load the kernel module "
        "with 'sudo modprobe uhid' (and add 'uhid' to /etc/modules-load.d/ to keep it)."
    ),
    BridgeReason.UHID_DENIED: (
        "This user may not open /dev/uhid: install deploy/udev/70-fido-hybrid-bridge.rules "
        "(see docs/bridge.md), join its group ('sudo usermod -aG fido-bridge $USER') and log "
        "in again."
    ),
    BridgeReason.UHID_FAILED: (
        "The kernel refused the virtual security key: check 'dmesg' for uhid errors, then "
        "start the bridge again."
    ),
    BridgeReason.NO_DISPLAY: (
        "There is no display for the QR code window (DISPLAY/WAYLAND_DISPLAY unset, or Tk "
        "missing): run with '--qr terminal' to draw the code in this terminal."
    ),
}


class BridgeError(HybridError):
    """The bridge cannot run; `reason` says why and `detail` what the system said."""

    def __init__(self, reason: BridgeReason, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        message = _BRIDGE_ADVICE[reason]
        if detail:
            message = f"{message} ({detail})"
        super().__init__(message)
