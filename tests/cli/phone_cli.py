"""What the phone CLI tests share: a desktop ceremony the CLI answers, and a fresh QR text."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hybrid.ble.bumble_advertiser import BumbleAdvertiser
from hybrid.ble.bumble_backend import BumbleScannerBackend
from hybrid.ble.bumble_radio import VirtualRadio
from hybrid.cli.phone import run
from hybrid.desktop import HybridClient
from hybrid.errors import HybridError
from hybrid.protocol import QRCode

RP = PublicKeyCredentialRpEntity(id="example.com", name="Example")
ALICE = PublicKeyCredentialUserEntity(id=b"user-alice", name="alice", display_name="Alice")
ArgvFor = Callable[[str], list[str]]


def qr_url(request_type: str = "mc") -> str:
    return QRCode.generate(request_type)[0].to_url()


async def ceremony(
    radio: VirtualRadio,
    tunnel_process: str,
    argv_for: ArgvFor,
    *,
    register: bool,
    rp: Fido2Server,
    credentials: list[Any] | None = None,
) -> tuple[Any, int]:
    """One desktop ceremony whose QR code the phone CLI answers.

    Returns what the relying party verified (or the desktop's HybridError) and the CLI's exit
    code, so a refusal can be checked on both sides.
    """
    advertiser = await BumbleAdvertiser.from_radio(radio, interval_ms=20)
    client = HybridClient(
        origin="https://example.com",
        tunnel_url=tunnel_process,
        timeout=20,
        scanner_backend=BumbleScannerBackend,
        scanner_kwargs={"radio": radio},
    )
    phone: list[asyncio.Task[int]] = []

    def show_qr(url: str) -> None:
        argv = [*argv_for(url), "--tunnel-url", tunnel_process, "--timeout", "20"]
        phone.append(asyncio.create_task(run(argv, advertiser=advertiser)))

    result: Any
    try:
        if register:
            # The CLI's y/N prompt is presence, not verification: the site must not demand UV.
            creation, state = rp.register_begin(
                ALICE,
                resident_key_requirement=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.DISCOURAGED,
            )
            response = await client.make_credential(dict(creation), show_qr)
            result = rp.register_complete(state, response)
        else:
            request, state = rp.authenticate_begin(
                user_verification=UserVerificationRequirement.DISCOURAGED
            )
            response = await client.get_assertion(dict(request), show_qr)
            result = rp.authenticate_complete(state, credentials or [], response)
    except HybridError as exc:
        result = exc
    finally:
        if phone:  # the phone finishes on its own; a stuck one must not outlive the test
            _, pending = await asyncio.wait(phone, timeout=10)
            for task in pending:
                task.cancel()
    assert len(phone) == 1
    return result, phone[0].result()
