"""A minimal relying party: issue WebAuthn options, verify what `python -m hybrid.qr` prints.

State (registered credentials and the pending challenge) lives in a JSON file, so the four
steps can run as separate commands:

    python examples/relying_party.py --state rp.json register-begin alice > options.json
    python -m hybrid.qr --register --options options.json --json > credential.json
    python examples/relying_party.py --state rp.json register-finish credential.json

    python examples/relying_party.py --state rp.json sign-in-begin > options.json
    python -m hybrid.qr --options options.json --json > assertion.json
    python examples/relying_party.py --state rp.json sign-in-finish assertion.json

A sign-in with a passkey this site does not know (deleted here, still on the phone) fails
with `UnknownCredential`, whose message tells the user to remove the passkey from the phone.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from fido2.server import Fido2Server
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import (
    AttestedCredentialData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
)

from hybrid.webauthn import UnknownCredential

RP = PublicKeyCredentialRpEntity(id="example.com", name="Example")


class RelyingParty:
    """Fido2Server plus a JSON file of credentials and the one pending ceremony state."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self.server = Fido2Server(RP)
        data = json.loads(state_file.read_text()) if state_file.exists() else {}
        self.credentials: dict[str, str] = data.get("credentials", {})  # id -> b64url data
        self.pending: dict[str, Any] | None = data.get("pending")

    def _save(self) -> None:
        data = {"credentials": self.credentials, "pending": self.pending}
        self.state_file.write_text(json.dumps(data))

    def _known(self) -> list[AttestedCredentialData]:
        return [AttestedCredentialData(websafe_decode(v)) for v in self.credentials.values()]

    def register_begin(self, user_name: str) -> dict[str, Any]:
        user = PublicKeyCredentialUserEntity(
            id=secrets.token_bytes(16), name=user_name, display_name=user_name
        )
        options, state = self.server.register_begin(
            user, self._known(), resident_key_requirement=ResidentKeyRequirement.REQUIRED
        )
        self.pending = state
        self._save()
        return dict(options["publicKey"])

    def register_finish(self, credential: dict[str, Any]) -> str:
        auth_data = self.server.register_complete(self.pending, credential)
        assert auth_data.credential_data is not None
        credential_id = websafe_encode(auth_data.credential_data.credential_id)
        self.credentials[credential_id] = websafe_encode(bytes(auth_data.credential_data))
        self.pending = None
        self._save()
        return credential_id

    def sign_in_begin(self) -> dict[str, Any]:
        options, state = self.server.authenticate_begin()  # discoverable: no allow list
        self.pending = state
        self._save()
        return dict(options["publicKey"])

    def sign_in_finish(self, assertion: dict[str, Any]) -> str:
        if assertion.get("id") not in self.credentials:
            raise UnknownCredential(RP.id or "", websafe_decode(assertion.get("rawId", "")))
        self.server.authenticate_complete(self.pending, self._known(), assertion)
        self.pending = None
        self._save()
        return str(assertion["id"])

    def forget(self, credential_id: str) -> None:
        """Delete a credential here only: the phone keeps its now orphaned passkey."""
        self.credentials.pop(credential_id, None)
        self._save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--state", type=Path, default=Path("rp-state.json"))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("register-begin").add_argument("user")
    sub.add_parser("register-finish").add_argument("credential", type=Path)
    sub.add_parser("sign-in-begin")
    sub.add_parser("sign-in-finish").add_argument("assertion", type=Path)
    sub.add_parser("forget").add_argument("credential_id")
    args = parser.parse_args(argv)
    rp = RelyingParty(args.state)
    try:
        if args.command == "register-begin":
            print(json.dumps(rp.register_begin(args.user)))
        elif args.command == "register-finish":
            print("registered", rp.register_finish(json.loads(args.credential.read_text())))
        elif args.command == "sign-in-begin":
            print(json.dumps(rp.sign_in_begin()))
        elif args.command == "sign-in-finish":
            print("signed in with", rp.sign_in_finish(json.loads(args.assertion.read_text())))
        else:
            rp.forget(args.credential_id)
    except UnknownCredential as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
