"""One CTAP2 request a program sent the virtual key, read just enough to forward it well.

The bridge forwards the program's bytes; it reads the site, the clientDataHash, the `up`
option and the credential lists only to route probes (`probes`) and to tell the user what is
asked. Where it has to change the request (a probe's list put back, `transports` taken out of
descriptors) it re-encodes the map canonically; otherwise the bytes go out as they came.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cbor2

from hybrid.ctap import CtapCommand, GetAssertionKey, MakeCredentialKey, decode_cbor_map
from hybrid.errors import ProtocolError
from hybrid.text import MAX_SITE_SHOWN, shown

from .probes import DUMMY_RP_IDS


@dataclass(frozen=True)
class BridgeRequest:
    """What the user is shown: the site and whether it registers ("mc") or signs in ("ga")."""

    kind: str
    rp_id: str

    @property
    def action(self) -> str:
        return "register a passkey" if self.kind == "mc" else "sign in"

    @property
    def title(self) -> str:
        site = shown(self.rp_id, "an unnamed site", limit=MAX_SITE_SHOWN)
        return f"{site} asks to {self.action} with your phone"


@dataclass(frozen=True)
class CtapRequest:
    """A makeCredential or getAssertion as bytes plus the members the bridge looks at."""

    raw: bytes
    members: dict[Any, Any]

    @classmethod
    def parse(cls, raw: bytes) -> CtapRequest:
        """`ProtocolError` unless `raw` is cmd ‖ a CBOR map with a site and a 32-byte hash."""
        if raw[0] not in (CtapCommand.MAKE_CREDENTIAL, CtapCommand.GET_ASSERTION):
            raise ProtocolError(f"command 0x{raw[0]:02x} is not forwarded to the phone")
        request = cls(raw, decode_cbor_map(raw[1:]))
        rp_id, client_data_hash = request.rp_id, request.client_data_hash
        if not isinstance(rp_id, str) or not rp_id:
            raise ProtocolError("the request names no site (rpId)")
        if not isinstance(client_data_hash, bytes) or len(client_data_hash) != 32:
            raise ProtocolError("the request's clientDataHash is not 32 bytes")
        return request

    @property
    def make_credential(self) -> bool:
        return self.raw[0] == CtapCommand.MAKE_CREDENTIAL

    @property
    def shown_as(self) -> BridgeRequest:
        return BridgeRequest("mc" if self.make_credential else "ga", self.rp_id)

    @property
    def rp_id(self) -> Any:
        if self.make_credential:
            rp = self.members.get(MakeCredentialKey.RP)
            return rp.get("id") if isinstance(rp, dict) else None
        return self.members.get(GetAssertionKey.RP_ID)

    @property
    def client_data_hash(self) -> Any:
        if self.make_credential:
            return self.members.get(MakeCredentialKey.CLIENT_DATA_HASH)
        return self.members.get(GetAssertionKey.CLIENT_DATA_HASH)

    @property
    def _list_key(self) -> int:
        if self.make_credential:
            return MakeCredentialKey.EXCLUDE_LIST
        return GetAssertionKey.ALLOW_LIST

    @property
    def _options_key(self) -> int:
        return MakeCredentialKey.OPTIONS if self.make_credential else GetAssertionKey.OPTIONS

    @property
    def credentials(self) -> Any:
        """The allowList (getAssertion) or excludeList (makeCredential), as sent."""
        return self.members.get(self._list_key)

    @property
    def options(self) -> dict[Any, Any]:
        options = self.members.get(self._options_key)
        return options if isinstance(options, dict) else {}

    @property
    def silent(self) -> bool:
        """A getAssertion with `up: false`: a key would answer it without a touch."""
        return not self.make_credential and self.options.get("up") is False

    @property
    def asks_for_a_touch_only(self) -> bool:
        """A dummy makeCredential: an empty pinUvAuthParam (CTAP 2.0's "touch to select") or a
        made-up site (Chromium's ".dummy", Firefox's "make.me.blink")."""
        return self.make_credential and (
            self.members.get(MakeCredentialKey.PIN_UV_AUTH_PARAM) == b""
            or self.rp_id in DUMMY_RP_IDS
        )

    def with_members(self, **changes: Any) -> CtapRequest:
        """A copy with members set (a value of None removes the member), re-encoded."""
        members = dict(self.members)
        for name, value in changes.items():
            key = {"credentials": self._list_key, "options": self._options_key}[name]
            if value is None:
                members.pop(key, None)
            else:
                members[key] = value
        raw = self.raw[:1] + cbor2.dumps(members, canonical=True)
        return replace(self, raw=raw, members=members)

    def with_presence(self) -> CtapRequest:
        """The request as the phone answers it: with user presence (`up` left at its default)."""
        options = {k: v for k, v in self.options.items() if k != "up"}
        return self.with_members(options=options or None)

    def without_usb_transports(self) -> CtapRequest:
        """`transports` taken out of the credential descriptors (unchanged if none has it).

        A program marks a USB key's credentials `transports: ["usb"]`; the phone holds them
        as hybrid credentials and some phones skip descriptors that do not list hybrid.
        """
        descriptors = self.credentials
        if not isinstance(descriptors, list) or not any(
            isinstance(d, dict) and "transports" in d for d in descriptors
        ):
            return self
        stripped = [
            {k: v for k, v in d.items() if k != "transports"} if isinstance(d, dict) else d
            for d in descriptors
        ]
        return self.with_members(credentials=stripped)
