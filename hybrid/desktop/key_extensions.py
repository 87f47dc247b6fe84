"""python-fido2's client extensions for USB keys, with prf and largeBlob reported as browsers do.

For a key without hmac-secret python-fido2 leaves `prf` out of the results; WebAuthn L3
(§10.1.4) and the phone path report `{"enabled": false}` at registration and `{}` at sign-in.
python-fido2 raises a bare `ValueError` when a site asks for largeBlob and the key has no
large-blob storage. WebAuthn L3 (§10.1.5) says otherwise, and so does the phone path: a
registration that *requires* largeBlob cannot use the key (it is skipped as UNSUPPORTED), and a
sign-in reads nothing (`{}`) or writes nothing (`{"written": false}`) but still succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fido2.client import ClientError
from fido2.ctap2.base import Ctap2
from fido2.ctap2.extensions import (
    AuthenticationExtensionProcessor,
    AuthenticatorExtensionsLargeBlobInputs,
    AuthenticatorExtensionsLargeBlobOutputs,
    AuthenticatorExtensionsPRFOutputs,
    CredBlobExtension,
    CredPropsExtension,
    CredProtectExtension,
    Ctap2Extension,
    HmacSecretExtension,
    LargeBlobExtension,
    MinPinLengthExtension,
    RegistrationExtensionProcessor,
)
from fido2.ctap2.pin import PinProtocol
from fido2.webauthn import PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions

LARGE_BLOB: Final = "largeBlob"
PRF: Final = "prf"


def _large_blob(
    extensions: Mapping[str, Any] | None,
) -> AuthenticatorExtensionsLargeBlobInputs | None:
    value = (extensions or {}).get(LARGE_BLOB)
    return AuthenticatorExtensionsLargeBlobInputs.from_dict(value) if value else None


class BrowserLargeBlob(LargeBlobExtension):
    """largeBlob as WebAuthn says, also for a key without large-blob storage (see above)."""

    def _supported(self, ctap: Ctap2) -> bool:
        return bool(self.is_supported(ctap))  # type: ignore[no-untyped-call]

    def make_credential(
        self,
        ctap: Ctap2,
        options: PublicKeyCredentialCreationOptions,
        pin_protocol: PinProtocol | None,
    ) -> RegistrationExtensionProcessor | None:
        wanted = _large_blob(options.extensions)
        if wanted is not None and wanted.support == "required" and not self._supported(ctap):
            raise ClientError.ERR.CONFIGURATION_UNSUPPORTED(LARGE_BLOB)
        return super().make_credential(ctap, options, pin_protocol)  # type: ignore[no-any-return,no-untyped-call]

    def get_assertion(
        self,
        ctap: Ctap2,
        options: PublicKeyCredentialRequestOptions,
        pin_protocol: PinProtocol | None,
    ) -> AuthenticationExtensionProcessor | None:
        wanted = _large_blob(options.extensions)
        if wanted is None or self._supported(ctap):
            return super().get_assertion(ctap, options, pin_protocol)  # type: ignore[no-any-return,no-untyped-call]
        if wanted.write is not None:
            output = AuthenticatorExtensionsLargeBlobOutputs(written=False)
        elif wanted.read:
            output = AuthenticatorExtensionsLargeBlobOutputs()
        else:
            return None
        return AuthenticationExtensionProcessor(outputs={LARGE_BLOB: output})


class BrowserPrf(HmacSecretExtension):
    """prf as WebAuthn says, also for a key without hmac-secret (see above)."""

    def make_credential(
        self,
        ctap: Ctap2,
        options: PublicKeyCredentialCreationOptions,
        pin_protocol: PinProtocol | None,
    ) -> RegistrationExtensionProcessor | None:
        processor = super().make_credential(ctap, options, pin_protocol)  # type: ignore[no-untyped-call]
        if processor is None and (options.extensions or {}).get(PRF) is not None:
            outputs = {PRF: AuthenticatorExtensionsPRFOutputs(enabled=False)}
            return RegistrationExtensionProcessor(outputs=outputs)
        return processor  # type: ignore[no-any-return]

    def get_assertion(
        self,
        ctap: Ctap2,
        options: PublicKeyCredentialRequestOptions,
        pin_protocol: PinProtocol | None,
    ) -> AuthenticationExtensionProcessor | None:
        processor = super().get_assertion(ctap, options, pin_protocol)  # type: ignore[no-untyped-call]
        if processor is None and (options.extensions or {}).get(PRF) is not None:
            return AuthenticationExtensionProcessor(
                outputs={PRF: AuthenticatorExtensionsPRFOutputs()}
            )
        return processor  # type: ignore[no-any-return]


def key_extensions() -> list[Ctap2Extension]:
    """python-fido2's default extensions, prf and largeBlob as browsers report them."""
    return [
        BrowserPrf(),  # type: ignore[no-untyped-call]
        BrowserLargeBlob(),
        CredBlobExtension(),
        CredProtectExtension(),
        MinPinLengthExtension(),
        CredPropsExtension(),
    ]
