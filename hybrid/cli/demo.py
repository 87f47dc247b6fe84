"""`python -m hybrid.qr demo`: the whole hybrid flow on one machine, with no hardware.

A tunnel server on loopback, a virtual Bluetooth radio (bumble) carrying the software phone's
advert to the desktop's real bleak scanner, a registration and a sign-in, both checked by
`fido2.server.Fido2Server` as a relying party would. Then a virtual USB security key (real
CTAPHID under python-fido2) registers and signs in too, in ceremonies that offer the phone
and the key at once, as a browser's passkey dialog does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hybrid.authenticator import SoftwareAuthenticator, SoftwareSecurityKey, approve_all
from hybrid.authenticator.phone import PhoneSessionResult, answer_qr
from hybrid.cli.common import EXIT_OK, add_verbose, configure_logging, run_main
from hybrid.desktop import HybridClient
from hybrid.errors import HybridError
from hybrid.qr.render import render_terminal
from hybrid.status import Status
from hybrid.text import shown

RP_ID = "example.com"
ORIGIN = "https://example.com"


class DemoPrinter:
    """Numbered steps and indented detail lines."""

    def __init__(self, out: TextIO, show_qr: bool) -> None:
        self.out = out
        self.show_qr_art = show_qr

    def step(self, text: str) -> None:
        print(f"\n==> {text}", file=self.out, flush=True)

    def detail(self, who: str, text: str) -> None:
        print(f"    {who:8} {text}", file=self.out, flush=True)

    def desktop_status(self, status: Status) -> None:
        self.detail("desktop", status.message)


async def _ceremony(
    printer: DemoPrinter,
    client: HybridClient,
    phone: SoftwareAuthenticator,
    advertiser: Any,
    tunnel_url: str,
    register: bool,
    options: dict[str, Any],
) -> tuple[dict[str, Any], PhoneSessionResult]:
    phone_task: list[asyncio.Task[PhoneSessionResult]] = []

    def show_qr(url: str) -> None:
        printer.detail("desktop", f"QR code: {url[:40]}… ({len(url)} characters)")
        if printer.show_qr_art:
            print(render_terminal(url), file=printer.out, end="")
        printer.detail("phone", "scanned the QR code; advertising over the virtual radio")
        phone_task.append(
            asyncio.create_task(
                answer_qr(url, phone, advertiser, tunnel_url, link=True, name="Demo phone")
            )
        )

    ceremony = client.make_credential if register else client.get_assertion
    try:
        credential = await ceremony(options, show_qr)
    except BaseException:
        for task in phone_task:
            task.cancel()
        raise
    result = await phone_task[0]
    printer.detail("phone", f"answered {result.command} (status {result.status:#04x})")
    return credential, result


async def _key_steps(
    printer: DemoPrinter,
    relying_party: Fido2Server,
    user: PublicKeyCredentialUserEntity,
    **client_kwargs: Any,
) -> None:
    """Register and sign in with a virtual USB key while the QR code is offered too."""

    def ignore_qr(url: str) -> None:
        printer.detail(
            "desktop", f"QR code offered too ({len(url)} characters); the phone stays put"
        )

    # Touched at once: a demo has no finger. It is the only key offered (no real HID keys).
    with SoftwareSecurityKey.with_store() as key:
        client = HybridClient(
            origin=ORIGIN,
            on_status=printer.desktop_status,
            timeout=60.0,
            security_keys=key.plugged_devices,
            **client_kwargs,
        )
        options, state = relying_party.register_begin(
            user,
            resident_key_requirement=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.DISCOURAGED,
        )
        printer.step("Register a passkey for alice on a USB security key (phone offered too)")
        credential = await client.make_credential(dict(options["publicKey"]), ignore_qr)
        auth_data = relying_party.register_complete(state, credential)
        assert auth_data.credential_data is not None
        via = ", ".join(credential["response"]["transports"])
        printer.detail("site", f"Fido2Server verified the registration (transports: {via})")

        request, state = relying_party.authenticate_begin(
            user_verification=UserVerificationRequirement.DISCOURAGED
        )
        printer.step(f"Sign in to {RP_ID}: phone and security key offered, the key answers")
        assertion = await client.get_assertion(dict(request["publicKey"]), ignore_qr)
        relying_party.authenticate_complete(state, [auth_data.credential_data], assertion)
        printer.detail("site", "Fido2Server verified the sign-in signature from the security key")


async def run_demo(out: TextIO, show_qr: bool = True) -> None:
    """Run the demo; raises on any failure."""
    from hybrid.ble.bumble_advertiser import BumbleAdvertiser
    from hybrid.ble.bumble_backend import BumbleScannerBackend
    from hybrid.ble.bumble_radio import VirtualRadio
    from tunnel_server import ServerConfig, TunnelServer

    printer = DemoPrinter(out, show_qr)
    async with TunnelServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        printer.step(f"Tunnel server listening on {server.url} (routing ID {server.routing_id})")
        async with VirtualRadio() as radio:
            advertiser = await BumbleAdvertiser.from_radio(radio, "software-phone")
            printer.step("Virtual Bluetooth radio up: a desktop scanner and a software phone")
            relying_party = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="Example"))
            # Approves everything and verifies nobody, so the site below asks for no UV.
            phone = SoftwareAuthenticator(store=None, approve=approve_all)
            client = HybridClient(
                origin=ORIGIN,
                tunnel_url=server.url,
                scanner_backend=BumbleScannerBackend,
                scanner_kwargs={"radio": radio},
                on_status=printer.desktop_status,
                timeout=60.0,
                transports=("hybrid",),  # the phone's steps: no real USB key joins them
            )
            user = PublicKeyCredentialUserEntity(
                id=b"demo-user-1", name="alice", display_name="Alice"
            )
            options, state = relying_party.register_begin(
                user,
                resident_key_requirement=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.DISCOURAGED,
            )
            printer.step(f"Register a passkey for alice at {RP_ID}")
            credential, _ = await _ceremony(
                printer, client, phone, advertiser, server.url, True, dict(options["publicKey"])
            )
            auth_data = relying_party.register_complete(state, credential)
            assert auth_data.credential_data is not None
            printer.detail("site", f"Fido2Server verified the registration of {credential['id']}")
            if client.linking_info is not None:
                name = shown(client.linking_info.authenticator_name, "the phone")  # phone's own
                printer.detail("desktop", f"linked with '{name}'")

            request, state = relying_party.authenticate_begin(
                user_verification=UserVerificationRequirement.DISCOURAGED
            )
            printer.step(f"Sign in to {RP_ID} with the passkey on the phone")
            assertion, _ = await _ceremony(
                printer, client, phone, advertiser, server.url, False, dict(request["publicKey"])
            )
            relying_party.authenticate_complete(state, [auth_data.credential_data], assertion)
            printer.detail("site", "Fido2Server verified the sign-in signature")
            await _key_steps(
                printer,
                relying_party,
                user,
                tunnel_url=server.url,
                scanner_backend=BumbleScannerBackend,
                scanner_kwargs={"radio": radio},
            )
            await advertiser.close()
    printer.step("Done: registered and signed in with the phone (hybrid) and the USB key.")


async def _demo(show_qr: bool) -> int:
    try:
        await run_demo(sys.stdout, show_qr=show_qr)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("bumble"):
            raise HybridError(
                "The demo needs bumble for its virtual Bluetooth radio: "
                "pip install 'fido-hybrid[bumble]'"
            ) from exc
        raise
    return EXIT_OK


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hybrid.qr demo", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--no-qr", action="store_true", help="do not draw the QR codes")
    add_verbose(parser)
    args = parser.parse_args(list(argv))
    configure_logging(args.verbose)
    return run_main(_demo(show_qr=not args.no_qr), verbose=args.verbose)
