"""authenticatorClientPIN (CTAP 2.1 §6.5), authenticator side, PIN/UV auth protocol 2 only.

Pure and synchronous: a security key feeds it the clientPin request map and gets the response map
back, or a `CtapStatusError` carrying the status CTAP prescribes. It also checks the
`pinUvAuthParam` of makeCredential/getAssertion, which is how a key *earns* the UV flag.

State lives in memory and follows the spec's power-cycle model: the key-agreement key and the
pinUvAuthToken are fresh per power cycle, PIN retries (8) survive it, and three wrong PINs in a
row block PIN entry until `power_cycle()`. The PIN itself is only kept as LEFT(SHA-256(PIN), 16).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hybrid.ctap import CtapStatus
from hybrid.errors import CtapStatusError

PIN_PROTOCOL: Final = 2
MAX_PIN_RETRIES: Final = 8
MAX_CONSECUTIVE_MISMATCHES: Final = 3
MIN_PIN_LENGTH: Final = 4  # Unicode code points
PADDED_PIN_LENGTH: Final = 64
TOKEN_LIFETIME_SECONDS: Final = 600.0  # the spec's maximum usage time period
_ECDH_ES_HKDF_256: Final = -25
_IV_LENGTH: Final = 16
_ZERO_SALT: Final = bytes(32)


class ClientPinCommand(IntEnum):
    GET_PIN_RETRIES = 0x01
    GET_KEY_AGREEMENT = 0x02
    SET_PIN = 0x03
    CHANGE_PIN = 0x04
    GET_PIN_TOKEN = 0x05
    GET_TOKEN_USING_PIN_WITH_PERMISSIONS = 0x09


class Permission(IntFlag):
    MAKE_CREDENTIAL = 0x01
    GET_ASSERTION = 0x02


_SUPPORTED_PERMISSIONS: Final = Permission.MAKE_CREDENTIAL | Permission.GET_ASSERTION


def _fail(status: CtapStatus, why: str) -> CtapStatusError:
    return CtapStatusError(status, f"{status.name}: {why}")


# --- PIN/UV auth protocol 2 primitives (CTAP 2.1 §6.5.7) -------------------------------------


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_ZERO_SALT, info=info).derive(secret)


def derive_shared_secret(z: bytes) -> bytes:
    """Protocol 2 KDF: HMAC key ‖ AES key, both HKDF-SHA-256 of the ECDH x-coordinate."""
    return _hkdf(z, b"CTAP2 HMAC key") + _hkdf(z, b"CTAP2 AES key")


def encrypt(shared_secret: bytes, plaintext: bytes) -> bytes:
    """AES-256-CBC under the AES half, random IV prepended (plaintext is block-aligned)."""
    iv = os.urandom(_IV_LENGTH)
    encryptor = Cipher(algorithms.AES(shared_secret[32:]), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(plaintext) + encryptor.finalize()


def decrypt(shared_secret: bytes, ciphertext: bytes) -> bytes:
    if len(ciphertext) < 2 * _IV_LENGTH or len(ciphertext) % _IV_LENGTH:
        raise _fail(CtapStatus.INVALID_PARAMETER, "ciphertext is not IV plus whole AES blocks")
    iv, body = ciphertext[:_IV_LENGTH], ciphertext[_IV_LENGTH:]
    decryptor = Cipher(algorithms.AES(shared_secret[32:]), modes.CBC(iv)).decryptor()
    return decryptor.update(body) + decryptor.finalize()


def authenticate(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA-256 under the first 32 bytes of `key` (a shared secret or a token)."""
    return hmac.digest(key[:32], message, "sha256")


def verify(key: bytes, message: bytes, signature: bytes) -> bool:
    """Constant-time check of a protocol 2 pinUvAuthParam (the full 32-byte HMAC)."""
    return hmac.compare_digest(authenticate(key, message), signature)


def _peer_public_key(cose_key: Any) -> ec.EllipticCurvePublicKey:
    if not isinstance(cose_key, dict):
        raise _fail(CtapStatus.CBOR_UNEXPECTED_TYPE, "keyAgreement must be a COSE_Key map")
    x, y = cose_key.get(-2), cose_key.get(-3)
    if cose_key.get(1) != 2 or cose_key.get(-1) != 1:
        raise _fail(CtapStatus.INVALID_PARAMETER, "keyAgreement must be an EC2 P-256 key")
    if not (isinstance(x, bytes) and isinstance(y, bytes) and len(x) == len(y) == 32):
        raise _fail(CtapStatus.INVALID_PARAMETER, "keyAgreement coordinates must be 32 bytes")
    try:  # from_encoded_point rejects points that are not on the curve
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    except ValueError as exc:
        raise _fail(CtapStatus.INVALID_PARAMETER, "keyAgreement is not a P-256 point") from exc


def _cose_public_key(public_key: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    numbers = public_key.public_numbers()
    return {
        1: 2,
        3: _ECDH_ES_HKDF_256,
        -1: 1,
        -2: numbers.x.to_bytes(32, "big"),
        -3: numbers.y.to_bytes(32, "big"),
    }


# --- Request field helpers ---------------------------------------------------------------------


def _field(params: dict[Any, Any], key: int, kind: type, what: str) -> Any:
    if key not in params:
        raise _fail(CtapStatus.MISSING_PARAMETER, f"{what} is missing")
    value = params[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _fail(CtapStatus.CBOR_UNEXPECTED_TYPE, f"{what} must be {kind.__name__}")
    return value


def _new_pin_hash(padded_pin: bytes) -> bytes:
    """Check a decrypted newPin block against the PIN policy; return LEFT(SHA-256(PIN), 16)."""
    if len(padded_pin) != PADDED_PIN_LENGTH:
        raise _fail(CtapStatus.INVALID_PARAMETER, "newPinEnc must hold a 64-byte padded PIN")
    pin = padded_pin.rstrip(b"\x00")
    try:
        code_points = len(pin.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _fail(CtapStatus.PIN_POLICY_VIOLATION, "the PIN is not UTF-8") from exc
    if code_points < MIN_PIN_LENGTH or len(pin) == PADDED_PIN_LENGTH:
        why = "a PIN needs at least 4 characters and at most 63 bytes"
        raise _fail(CtapStatus.PIN_POLICY_VIOLATION, why)
    return pin_hash(pin)


def pin_hash(pin: bytes) -> bytes:
    """How the key stores a PIN: LEFT(SHA-256(PIN), 16)."""
    return hashlib.sha256(pin).digest()[:16]


@dataclass
class _Token:
    value: bytes = field(repr=False)  # the pinUvAuthToken: kept out of logs
    permissions: Permission
    rp_id: str | None
    issued_at: float


class ClientPinAuthenticator:
    """The clientPin state machine of one security key (PIN protocol 2).

    `pin` presets a PIN (a `CtapStatusError` PIN_POLICY_VIOLATION if it breaks the policy);
    `token_lifetime` bounds how long a pinUvAuthToken may be used, in seconds.
    """

    def __init__(
        self, pin: str | None = None, token_lifetime: float = TOKEN_LIFETIME_SECONDS
    ) -> None:
        self._token_lifetime = token_lifetime
        self._pin_hash: bytes | None = None
        self._retries = MAX_PIN_RETRIES
        self.power_cycle()
        if pin is not None:
            self._pin_hash = _new_pin_hash(pin.encode().ljust(PADDED_PIN_LENGTH, b"\x00"))

    @property
    def pin_is_set(self) -> bool:
        return self._pin_hash is not None

    @property
    def retries(self) -> int:
        return self._retries

    def power_cycle(self) -> None:
        """What unplugging and replugging does: new key agreement key and token, PIN unblocked."""
        self._key_agreement = ec.generate_private_key(ec.SECP256R1())
        self._token: _Token | None = None
        self._mismatches = 0

    # --- authenticatorClientPIN ----------------------------------------------------------------

    def handle(self, params: dict[Any, Any]) -> dict[int, Any]:
        """Answer one authenticatorClientPIN request map; raises `CtapStatusError`."""
        subcommand = _field(params, 2, int, "subCommand")
        if subcommand == ClientPinCommand.GET_PIN_RETRIES and 1 not in params:
            protocol = PIN_PROTOCOL  # CTAP 2.1 lets getPINRetries omit the protocol
        else:
            protocol = _field(params, 1, int, "pinUvAuthProtocol")
        if protocol != PIN_PROTOCOL:
            raise _fail(CtapStatus.INVALID_PARAMETER, "only PIN/UV auth protocol 2 is supported")
        if subcommand == ClientPinCommand.GET_PIN_RETRIES:
            return {3: self._retries, 4: self._mismatches >= MAX_CONSECUTIVE_MISMATCHES}
        if subcommand == ClientPinCommand.GET_KEY_AGREEMENT:
            return {1: _cose_public_key(self._key_agreement.public_key())}
        if subcommand == ClientPinCommand.SET_PIN:
            return self._set_pin(params)
        if subcommand == ClientPinCommand.CHANGE_PIN:
            return self._change_pin(params)
        if subcommand == ClientPinCommand.GET_PIN_TOKEN:
            if 9 in params or 10 in params:
                raise _fail(CtapStatus.INVALID_PARAMETER, "getPinToken takes no permissions")
            return self._issue_token(params, _SUPPORTED_PERMISSIONS, None)
        if subcommand == ClientPinCommand.GET_TOKEN_USING_PIN_WITH_PERMISSIONS:
            permissions = _field(params, 9, int, "permissions")
            rp_id = _field(params, 10, str, "rpId") if 10 in params else None
            if permissions == 0:
                raise _fail(CtapStatus.INVALID_PARAMETER, "permissions must not be empty")
            if permissions & ~int(_SUPPORTED_PERMISSIONS):
                raise _fail(CtapStatus.UNAUTHORIZED_PERMISSION, "only mc and ga are supported")
            if rp_id is None:
                raise _fail(CtapStatus.MISSING_PARAMETER, "mc and ga permissions need an rpId")
            return self._issue_token(params, Permission(permissions), rp_id)
        raise _fail(CtapStatus.INVALID_SUBCOMMAND, f"subCommand {subcommand} is not supported")

    def shared_secret(self, cose_key: Any) -> bytes:
        """The protocol 2 shared secret with a platform's key agreement key (COSE), as
        clientPIN derives it; hmac-secret (CTAP 2.1 §12.5) encrypts its salts under it."""
        return self._shared_secret({3: cose_key})

    def _shared_secret(self, params: dict[Any, Any]) -> bytes:
        peer = _peer_public_key(_field(params, 3, dict, "keyAgreement"))
        z = self._key_agreement.exchange(ec.ECDH(), peer)
        return derive_shared_secret(z)

    def _set_pin(self, params: dict[Any, Any]) -> dict[int, Any]:
        auth_param = _field(params, 4, bytes, "pinUvAuthParam")
        new_pin_enc = _field(params, 5, bytes, "newPinEnc")
        if self._pin_hash is not None:
            raise _fail(CtapStatus.NOT_ALLOWED, "a PIN is already set; use changePIN")
        shared = self._shared_secret(params)
        if not verify(shared, new_pin_enc, auth_param):
            raise _fail(CtapStatus.PIN_AUTH_INVALID, "pinUvAuthParam does not match newPinEnc")
        self._pin_hash = _new_pin_hash(decrypt(shared, new_pin_enc))
        self._retries = MAX_PIN_RETRIES
        return {}

    def _change_pin(self, params: dict[Any, Any]) -> dict[int, Any]:
        auth_param = _field(params, 4, bytes, "pinUvAuthParam")
        new_pin_enc = _field(params, 5, bytes, "newPinEnc")
        pin_hash_enc = _field(params, 6, bytes, "pinHashEnc")
        self._check_not_blocked()
        shared = self._shared_secret(params)
        if not verify(shared, new_pin_enc + pin_hash_enc, auth_param):
            raise _fail(CtapStatus.PIN_AUTH_INVALID, "pinUvAuthParam does not match")
        self._check_pin(shared, pin_hash_enc)
        self._pin_hash = _new_pin_hash(decrypt(shared, new_pin_enc))
        self._token = None  # a PIN change invalidates every token
        return {}

    def _issue_token(
        self, params: dict[Any, Any], permissions: Permission, rp_id: str | None
    ) -> dict[int, Any]:
        pin_hash_enc = _field(params, 6, bytes, "pinHashEnc")
        self._check_not_blocked()
        shared = self._shared_secret(params)
        self._check_pin(shared, pin_hash_enc)
        token = os.urandom(32)
        self._token = _Token(token, permissions, rp_id, time.monotonic())
        return {2: encrypt(shared, token)}

    def _check_not_blocked(self) -> None:
        if self._pin_hash is None:
            raise _fail(CtapStatus.PIN_NOT_SET, "no PIN is set on this key")
        if self._retries == 0:
            raise _fail(CtapStatus.PIN_BLOCKED, "the PIN is blocked; the key must be reset")
        if self._mismatches >= MAX_CONSECUTIVE_MISMATCHES:
            raise _fail(CtapStatus.PIN_AUTH_BLOCKED, "unplug and replug the key to try again")

    def _check_pin(self, shared: bytes, pin_hash_enc: bytes) -> None:
        """Spend one retry, then compare; a match restores all retries (CTAP 2.1 §6.5.5.7)."""
        assert self._pin_hash is not None  # _check_not_blocked ran first
        if len(pin_hash_enc) != 2 * _IV_LENGTH:
            raise _fail(CtapStatus.INVALID_PARAMETER, "pinHashEnc must be IV plus one block")
        self._retries -= 1
        if hmac.compare_digest(decrypt(shared, pin_hash_enc), self._pin_hash):
            self._retries = MAX_PIN_RETRIES
            self._mismatches = 0
            return
        self._key_agreement = ec.generate_private_key(ec.SECP256R1())
        self._mismatches += 1
        if self._retries == 0:
            raise _fail(CtapStatus.PIN_BLOCKED, "the last PIN retry was used up")
        if self._mismatches >= MAX_CONSECUTIVE_MISMATCHES:
            raise _fail(CtapStatus.PIN_AUTH_BLOCKED, "three wrong PINs; unplug and replug")
        raise _fail(CtapStatus.PIN_INVALID, f"wrong PIN, {self._retries} retries left")

    # --- makeCredential / getAssertion -----------------------------------------------------------

    def verify_request(
        self, client_data_hash: bytes, auth_param: bytes, permission: Permission, rp_id: str
    ) -> bool:
        """Check a request's pinUvAuthParam; True means UV was earned. Raises on any mismatch."""
        if self._pin_hash is None:
            raise _fail(CtapStatus.PIN_NOT_SET, "pinUvAuthParam given but no PIN is set")
        token = self._token
        if token is None or not verify(token.value, client_data_hash, auth_param):
            raise _fail(CtapStatus.PIN_AUTH_INVALID, "pinUvAuthParam does not verify")
        if time.monotonic() - token.issued_at > self._token_lifetime:
            self._token = None
            raise _fail(CtapStatus.PIN_AUTH_INVALID, "the pinUvAuthToken has expired")
        if not token.permissions & permission:
            raise _fail(CtapStatus.PIN_AUTH_INVALID, f"the token lacks the {permission} right")
        if token.rp_id is not None and token.rp_id != rp_id:
            raise _fail(CtapStatus.PIN_AUTH_INVALID, "the token is bound to another rpId")
        token.rp_id = rp_id
        return True

    def consume_token_permissions(self) -> None:
        """After a successful mc/ga the token's mc and ga permissions are spent (CTAP 2.1)."""
        if self._token is not None:
            self._token.permissions = Permission(0)
