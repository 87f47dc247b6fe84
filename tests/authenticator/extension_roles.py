"""Two roles for the extension tests: the desktop-side module builds each CTAP request from the
phone's real getInfo, the phone answers it, and the desktop-side module maps the outputs to the
clientExtensionResults a browser would give. Also run as a separate process:

    python -m tests.authenticator.extension_roles STORE CREDENTIAL_ID PRF_INPUT

signs in once with the passkey in STORE and prints its PRF result for PRF_INPUT (base64url).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

from fido2 import cbor
from fido2.ctap2.base import AssertionResponse, AttestationResponse, Info
from fido2.utils import websafe_decode

from hybrid.authenticator import SoftwareAuthenticator, approve_all
from hybrid.ctap import CtapCommand, decode_cbor_map
from hybrid.webauthn.extensions import (
    authentication_client_outputs,
    authentication_ctap_extensions,
    parse_authentication_extensions,
    parse_registration_extensions,
    registration_client_outputs,
    registration_ctap_extensions,
)

RP = "example.com"
CDH = b"\x33" * 32


@dataclass
class Registered:
    response: AttestationResponse
    client_outputs: dict[str, Any]

    @property
    def credential_id(self) -> bytes:
        data = self.response.auth_data.credential_data
        assert data is not None
        return data.credential_id


@dataclass
class Asserted:
    response: AssertionResponse
    client_outputs: dict[str, Any]


class CtapRefused(Exception):
    """The phone answered with a status other than SUCCESS; `status` is that byte."""

    def __init__(self, status: int) -> None:
        super().__init__(f"CTAP status 0x{status:02x}")
        self.status = status


def phone_info(phone: SoftwareAuthenticator) -> Info:
    return Info.from_dict(decode_cbor_map(phone.get_info_cbor()))


async def _call(phone: SoftwareAuthenticator, command: int, params: dict[int, Any]) -> Any:
    reply = await phone.handle_ctap(bytes([command]) + cbor.encode(params))
    if reply[0] != 0:
        raise CtapRefused(reply[0])
    return decode_cbor_map(reply[1:])


async def create(
    phone: SoftwareAuthenticator,
    extensions: dict[str, Any],
    *,
    user_id: bytes = b"user-1",
    user_verification: str = "discouraged",
) -> Registered:
    """A create() with these extension inputs (WebAuthn JSON), rk required.

    The desktop module then asks for credProtect 2 by default (3 with uv "preferred").
    """
    parsed = parse_registration_extensions(
        extensions, resident_key="required", user_verification=user_verification
    )
    ctap = registration_ctap_extensions(parsed, phone_info(phone), resident_key=True)
    options = {"rk": True}
    if user_verification == "required":
        options["uv"] = True
    params: dict[int, Any] = {
        1: CDH,
        2: {"id": RP, "name": "Example"},
        3: {"id": user_id, "name": f"{user_id.decode()}@example.com"},
        4: [{"alg": -7, "type": "public-key"}],
        7: options,
    }
    if ctap:
        params[6] = ctap
    body = await _call(phone, CtapCommand.MAKE_CREDENTIAL, params)
    outputs = registration_client_outputs(parsed, body.get(6), resident_key=True)
    return Registered(AttestationResponse.from_dict(body), outputs)


async def get(
    phone: SoftwareAuthenticator,
    extensions: dict[str, Any] | None = None,
    *,
    allow: list[bytes] | None = None,
    user_verification: bool = False,
) -> Asserted:
    """A get() with these extension inputs (WebAuthn JSON); no `allow`: discoverable."""
    parsed = parse_authentication_extensions(extensions, allow or ())
    ctap = authentication_ctap_extensions(parsed, phone_info(phone))
    params: dict[int, Any] = {1: RP, 2: CDH}
    if allow:
        params[3] = [{"id": i, "type": "public-key"} for i in allow]
    if ctap:
        params[4] = ctap
    if user_verification:
        params[5] = {"uv": True}
    body = await _call(phone, CtapCommand.GET_ASSERTION, params)
    outputs = authentication_client_outputs(parsed, body.get(8))
    return Asserted(AssertionResponse.from_dict(body), outputs)


async def _prf_in_this_process(store: str, credential_id: str, prf_input: str) -> str:
    phone = SoftwareAuthenticator(store, approve=approve_all)
    asked = {"prf": {"eval": {"first": prf_input}}}
    result = await get(phone, asked, allow=[websafe_decode(credential_id)])
    first: str = result.client_outputs["prf"]["results"]["first"]
    return first


if __name__ == "__main__":
    print(asyncio.run(_prf_in_this_process(*sys.argv[1:4])))
