"""The phone's CTAP2 authenticator in software: bytes in, bytes out, nothing else.

It answers makeCredential, getAssertion and getInfo the way a phone does over hybrid: P-256
passkeys that are always discoverable, "none" attestation and an all-zero AAGUID. Every reply
is a status byte followed by CBOR; no input, however broken, escapes as an exception.

User presence is the `approve` callback's yes. User verification is claimed only when it is
real: with `verifies_user=True` the callback is the phone's PIN/biometric check, getInfo says
`uv: true` and an approval of a request asking for `uv` sets the UV flag. Without it, getInfo
has no `uv` and a request asking for `uv` is refused with CTAP2_ERR_UNSUPPORTED_OPTION.

Consent comes first: the user is asked before the authenticator reveals whether it holds a
matching or excluded passkey (CTAP 2.1 order), so a desktop cannot probe the phone silently;
for the same reason `up: false` is refused. The passkey work itself (shared with the USB
key) is `hybrid.authenticator.credentials.Passkeys`; prf, credProtect and largeBlob are offered.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from fido2 import cbor

from hybrid.authenticator.approval import ApprovalRequest, Approver, ask_user
from hybrid.authenticator.credentials import (
    AAGUID,
    SUPPORTED_ALGORITHMS,
    GetAssertion,
    MakeCredential,
    Passkeys,
)
from hybrid.authenticator.extensions import SUPPORTED_EXTENSIONS
from hybrid.authenticator.requests import PUBLIC_KEY
from hybrid.authenticator.store import CredentialStore
from hybrid.ctap import CtapCommand, CtapStatus, decode_cbor
from hybrid.errors import CtapStatusError, ProtocolError, StoreError

logger = logging.getLogger(__name__)


def _get_info(verifies_user: bool) -> bytes:
    """The getInfo map; an absent `uv` option means "this authenticator cannot verify"."""
    options = {"rk": True, "up": True}
    if verifies_user:
        options["uv"] = True
    return cbor.encode(
        {
            1: ["FIDO_2_0", "FIDO_2_1"],
            2: list(SUPPORTED_EXTENSIONS),
            3: AAGUID,
            4: options,
            9: ["hybrid", "internal"],
            10: [{"alg": alg, "type": PUBLIC_KEY} for alg in SUPPORTED_ALGORITHMS],
            0x16: ["none"],  # attestationFormats: say so, or parsers assume "packed"
        }
    )


def _ok(body: dict[int, Any]) -> bytes:
    return bytes([CtapStatus.SUCCESS]) + cbor.encode(body)


def _status(status: CtapStatus) -> CtapStatusError:
    return CtapStatusError(status, status.name)


class SoftwareAuthenticator:
    """A phone's passkey authenticator; `store` is a JSON file path, a store, or None (memory).

    `approve(ApprovalRequest)` is the phone's consent screen, plain or async; it must return
    True to go on (`approve_all` is the explicit yes for tests and demos). `verifies_user`
    says that `approve` really verifies the user (PIN, biometric, OS prompt) when the
    request's `user_verification` is set; only then is user verification offered and claimed.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | CredentialStore | None = None,
        approve: Approver | None = None,
        *,
        verifies_user: bool = False,
    ) -> None:
        if approve is None:  # positional like before, but never a silent allow-all
            raise TypeError(
                "SoftwareAuthenticator needs approve=: the phone's consent check (use "
                "hybrid.authenticator.approve_all only in tests and demos)"
            )
        self._store = store if isinstance(store, CredentialStore) else CredentialStore(store)
        self._passkeys = Passkeys(self._store, extensions=SUPPORTED_EXTENSIONS)
        self._approve = approve
        self._verifies_user = verifies_user
        self._get_info = _get_info(verifies_user)

    def __repr__(self) -> str:
        return f"SoftwareAuthenticator({self._store!r}, verifies_user={self._verifies_user})"

    @property
    def store(self) -> CredentialStore:
        return self._store

    @property
    def verifies_user(self) -> bool:
        return self._verifies_user

    def get_info_cbor(self) -> bytes:
        """The authenticatorGetInfo response map (no status byte), as the post-handshake carries."""
        return self._get_info

    async def handle_ctap(self, request: bytes) -> bytes:
        """Answer one CTAP2 command (`cmd ‖ CBOR`) with `status ‖ CBOR`; never raises."""
        try:
            return await self._dispatch(bytes(request))
        except CtapStatusError as exc:
            logger.debug("CTAP request refused: %s", exc)
            return bytes([exc.status])
        except StoreError as exc:
            logger.error("credential store failure: %s", exc)
            return bytes([CtapStatus.OTHER])
        except Exception as exc:  # last line of defence: a phone must answer, not crash
            logger.error("unexpected %s while handling a CTAP request", type(exc).__name__)
            return bytes([CtapStatus.OTHER])

    async def _dispatch(self, request: bytes) -> bytes:
        if not request:
            raise _status(CtapStatus.INVALID_LENGTH)
        command, body = request[0], request[1:]
        if command == CtapCommand.GET_INFO:
            if body:
                raise _status(CtapStatus.INVALID_LENGTH)
            return bytes([CtapStatus.SUCCESS]) + self._get_info
        if command not in (CtapCommand.MAKE_CREDENTIAL, CtapCommand.GET_ASSERTION):
            raise _status(CtapStatus.INVALID_COMMAND)
        if not body:
            raise _status(CtapStatus.MISSING_PARAMETER)
        try:
            params = decode_cbor(body)
        except ProtocolError as exc:
            raise _status(CtapStatus.INVALID_CBOR) from exc
        if not isinstance(params, dict):
            raise _status(CtapStatus.CBOR_UNEXPECTED_TYPE)
        if command == CtapCommand.MAKE_CREDENTIAL:
            create = self._passkeys.parse_make_credential(params)
            self._check_verification(create.request.user_verification)
            return await self._make_credential(create)
        get = self._passkeys.parse_get_assertion(params)
        self._check_verification(get.request.user_verification)
        return await self._get_assertion(get)

    def _check_verification(self, requested: bool) -> None:
        if requested and not self._verifies_user:
            # The site asked for a verification this authenticator cannot perform.
            raise CtapStatusError(
                CtapStatus.UNSUPPORTED_OPTION,
                "UNSUPPORTED_OPTION: uv was requested but this authenticator does not verify",
            )

    def _verified(self, requested: bool) -> bool:
        """UV is earned only when the approval was a verification the request asked for."""
        return self._verifies_user and requested

    async def _make_credential(self, create: MakeCredential) -> bytes:
        request = create.request
        approved = await ask_user(
            self._approve,
            ApprovalRequest(
                "create",
                request.rp_id,
                request.user_name,
                request.user_display_name,
                user_verification=request.user_verification,
            ),
        )
        if not approved:
            raise _status(CtapStatus.OPERATION_DENIED)
        user_verified = self._verified(request.user_verification)
        return _ok(self._passkeys.create(create, user_verified=user_verified))

    async def _get_assertion(self, get: GetAssertion) -> bytes:
        request = get.request
        user_verified = self._verified(request.user_verification)
        matches = self._passkeys.candidates(get, user_verified=user_verified)
        chosen = matches[0] if matches else None  # the most recently created match
        approved = await ask_user(
            self._approve,
            ApprovalRequest(
                "get",
                request.rp_id,
                chosen.user_name if chosen else None,
                chosen.user_display_name if chosen else None,
                user_verification=request.user_verification,
            ),
        )
        if not approved:
            raise _status(CtapStatus.OPERATION_DENIED)
        if chosen is None:
            raise _status(CtapStatus.NO_CREDENTIALS)
        response = self._passkeys.sign(
            get,
            chosen,  # re-read under the store's lock: it may have changed meanwhile
            user_present=True,
            user_verified=user_verified,
            reveal_user=request.allow_ids is None,  # the desktop shows who signs in
        )
        return _ok(response)
