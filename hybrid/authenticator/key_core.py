"""The software USB key's `CredentialCore`: the shared `Passkeys` behind a touch.

Unlike the phone, a key answers `up: false` (python-fido2's silent allow-list pre-flight):
no touch, no UP flag, only the counter step CTAP 2.1 prescribes for every assertion. It
makes a non-discoverable credential when `rk` was not asked for, and
offers credProtect and hmac-secret (keys speak hmac-secret rather than prf; python-fido2 maps
WebAuthn's prf onto it). It implements no largeBlob, so its getInfo does not list it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

from hybrid.authenticator.credentials import AAGUID, SUPPORTED_ALGORITHMS, Passkeys
from hybrid.authenticator.hmac_secret import (
    HMAC_SECRET,
    HmacSecretInput,
    output,
    wants_hmac_secret,
)
from hybrid.authenticator.store import CredentialStore
from hybrid.ctap import CtapStatus
from hybrid.errors import CtapStatusError
from hybrid.webauthn.extensions import CRED_PROTECT

if TYPE_CHECKING:
    from hybrid.authenticator.security_key import PresenceCheck
    from hybrid.authenticator.stored_credential import StoredCredential

#: getInfo key 2 of the software key.
KEY_EXTENSIONS: Final = (CRED_PROTECT, HMAC_SECRET)


class StoreCredentialCore:
    """A `CredentialCore` over a credential store (a path, a store, or None for memory)."""

    aaguid: Final = AAGUID
    algorithms: Final = SUPPORTED_ALGORITHMS
    extensions: Final = KEY_EXTENSIONS

    def __init__(self, store: str | os.PathLike[str] | CredentialStore | None = None) -> None:
        self._store = store if isinstance(store, CredentialStore) else CredentialStore(store)
        self._passkeys = Passkeys(self._store, extensions=KEY_EXTENSIONS)

    def __repr__(self) -> str:
        return f"StoreCredentialCore({self._store!r})"

    @property
    def store(self) -> CredentialStore:
        return self._store

    def make_credential(
        self, params: dict[Any, Any], user_verified: bool, confirm_presence: PresenceCheck
    ) -> dict[int, Any]:
        create = self._passkeys.parse_make_credential(params)
        confirm_presence()
        return self._passkeys.create(
            create,
            user_verified=user_verified,
            discoverable=create.request.resident_key,
            signed_extensions={HMAC_SECRET: True} if wants_hmac_secret(params.get(6)) else None,
        )

    def get_assertion(
        self, params: dict[Any, Any], user_verified: bool, confirm_presence: PresenceCheck
    ) -> dict[int, Any]:
        """The most recent usable credential (numberOfCredentials is left out)."""
        get = self._passkeys.parse_get_assertion(params, allow_silent=True)
        matches = self._passkeys.candidates(get, user_verified=user_verified)
        if not matches:
            raise CtapStatusError(CtapStatus.NO_CREDENTIALS, "NO_CREDENTIALS: none usable here")
        present = get.request.user_presence
        if present:
            confirm_presence()
        given = (params.get(4) or {}).get(HMAC_SECRET)

        def hmac_secret(credential: StoredCredential) -> dict[str, Any]:
            if not isinstance(given, HmacSecretInput) or credential.prf_secret is None:
                return {}
            return {HMAC_SECRET: output(credential.prf_secret, user_verified, given)}

        return self._passkeys.sign(
            get,
            matches[0],
            user_present=present,
            user_verified=user_verified,
            # CTAP 2.1 §6.2.2: names only to a verified user of a discoverable request.
            reveal_user=user_verified and get.request.allow_ids is None,
            signed_extensions=hmac_secret if present else None,
        )
