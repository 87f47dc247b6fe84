"""Encrypt a file with a key only your phone's passkey can give back (the PRF extension).

The password-manager pattern: each file gets a random 32-byte salt; the passkey's PRF output at
that salt, through HKDF-SHA256, is the AES-256-GCM key. The sealed file keeps the credential ID
and the salt (neither is secret), so decrypting asks the same passkey for the same output.

It runs with no hardware, in the demo's virtual setup: a tunnel server on loopback, a bumble
virtual radio and a software phone whose passkeys live in `--phone-store`:

    python examples/prf_encrypt.py --phone-store phone.json encrypt notes.txt notes.sealed
    python examples/prf_encrypt.py --phone-store phone.json decrypt notes.sealed notes.txt

The first encryption registers a passkey (with prf) if the phone has none for the site.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fido2.utils import websafe_decode, websafe_encode

from hybrid import HybridClient, HybridError
from hybrid.authenticator import SoftwareAuthenticator, answer_qr, approve_all
from hybrid.errors import NoCredentials

RP_ID = "example.com"
ORIGIN = "https://example.com"
MAGIC = b"HPRF1"
SALT_SIZE = 32
NONCE_SIZE = 12
HKDF_INFO = b"fido-hybrid prf_encrypt file key v1"

#: Runs one WebAuthn ceremony: options JSON in, credential JSON out.
Ceremony = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class SealedFileError(HybridError):
    """The input is not a file this example sealed, or it was changed since."""


def file_key(prf_output: bytes, salt: bytes) -> bytes:
    """The AES-256 key: HKDF-SHA256 over the PRF output, bound to this file's salt."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=HKDF_INFO).derive(prf_output)


def seal(plaintext: bytes, credential_id: bytes, salt: bytes, prf_output: bytes) -> bytes:
    """MAGIC ‖ len(id) ‖ id ‖ salt ‖ nonce ‖ AES-GCM(plaintext), the header as associated data."""
    if not 0 < len(credential_id) < 256:
        raise ValueError("credential IDs are 1 to 255 bytes here")
    nonce = os.urandom(NONCE_SIZE)
    header = MAGIC + struct.pack("B", len(credential_id)) + credential_id + salt + nonce
    return header + AESGCM(file_key(prf_output, salt)).encrypt(nonce, plaintext, header)


def read_header(sealed: bytes) -> tuple[bytes, bytes, bytes, int]:
    """(credential ID, salt, nonce, where the ciphertext starts); `SealedFileError` if malformed."""
    if not sealed.startswith(MAGIC) or len(sealed) <= len(MAGIC):
        raise SealedFileError("This is not a file sealed by prf_encrypt: check the file name.")
    start = len(MAGIC) + 1
    id_end = start + sealed[len(MAGIC)]
    body = id_end + SALT_SIZE + NONCE_SIZE
    if id_end == start or len(sealed) < body + 16:  # 16: the GCM tag
        raise SealedFileError("The sealed file is truncated: restore it from a copy.")
    return (
        sealed[start:id_end],
        sealed[id_end : id_end + SALT_SIZE],
        sealed[body - NONCE_SIZE : body],
        body,
    )


def unseal(sealed: bytes, prf_output: bytes) -> bytes:
    _, salt, nonce, body = read_header(sealed)
    try:
        return AESGCM(file_key(prf_output, salt)).decrypt(nonce, sealed[body:], sealed[:body])
    except InvalidTag as exc:
        raise SealedFileError(
            "The file was changed, or sealed with another passkey: nothing was decrypted."
        ) from exc


def _prf_results(credential: dict[str, Any]) -> dict[str, str]:
    results: dict[str, str] = (
        credential.get("clientExtensionResults", {}).get("prf", {}).get("results", {})
    )
    return results


def _prf_first(credential: dict[str, Any]) -> bytes:
    if "first" not in _prf_results(credential):
        raise HybridError("The phone gave no PRF output: use a phone that supports prf.")
    return websafe_decode(_prf_results(credential)["first"])


def _sign_in_options(salt: bytes, credential_id: bytes | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "challenge": websafe_encode(secrets.token_bytes(32)),
        "rpId": RP_ID,
        "extensions": {"prf": {"eval": {"first": websafe_encode(salt)}}},
    }
    if credential_id is not None:
        options["allowCredentials"] = [{"type": "public-key", "id": websafe_encode(credential_id)}]
    return options


def _registration_options(salt: bytes) -> dict[str, Any]:
    return {
        "challenge": websafe_encode(secrets.token_bytes(32)),
        "rp": {"id": RP_ID, "name": "prf_encrypt example"},
        "user": {"id": websafe_encode(secrets.token_bytes(16)), "name": "files"},
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required"},
        "extensions": {"prf": {"eval": {"first": websafe_encode(salt)}}},
    }


async def encrypt(plaintext: bytes, sign_in: Ceremony, register: Ceremony) -> bytes:
    """Seal with the phone's passkey for the site, registering one first if it has none."""
    salt = secrets.token_bytes(SALT_SIZE)
    try:
        credential = await sign_in(_sign_in_options(salt, None))
    except NoCredentials:
        credential = await register(_registration_options(salt))
        if not _prf_results(credential):  # phones need not evaluate PRF while registering
            credential = await sign_in(_sign_in_options(salt, websafe_decode(credential["rawId"])))
    return seal(plaintext, websafe_decode(credential["rawId"]), salt, _prf_first(credential))


async def decrypt(sealed: bytes, sign_in: Ceremony) -> bytes:
    credential_id, salt, _, _ = read_header(sealed)
    return unseal(sealed, _prf_first(await sign_in(_sign_in_options(salt, credential_id))))


@contextlib.asynccontextmanager
async def virtual_phone(store: Path) -> AsyncIterator[tuple[Ceremony, Ceremony]]:
    """(sign_in, register) run against a software phone over a virtual radio, as in the demo."""
    from hybrid.ble.bumble_advertiser import BumbleAdvertiser
    from hybrid.ble.bumble_backend import BumbleScannerBackend
    from hybrid.ble.bumble_radio import VirtualRadio
    from tunnel_server import ServerConfig, TunnelServer

    phone = SoftwareAuthenticator(store, approve=approve_all)
    async with (
        TunnelServer(ServerConfig(host="127.0.0.1", port=0)) as server,
        VirtualRadio() as radio,
    ):
        advertiser = await BumbleAdvertiser.from_radio(radio, "software-phone")
        client = HybridClient(
            origin=ORIGIN,
            tunnel_url=server.url,
            scanner_backend=BumbleScannerBackend,
            scanner_kwargs={"radio": radio},
            timeout=60.0,
        )
        answers: list[asyncio.Task[Any]] = []

        def scan(url: str) -> None:
            answers.append(asyncio.create_task(answer_qr(url, phone, advertiser, server.url)))

        async def run(ceremony: Callable[..., Awaitable[dict[str, Any]]], options: Any) -> Any:
            try:
                return await ceremony(options, scan)
            finally:
                await asyncio.gather(*answers, return_exceptions=True)

        try:
            yield (
                lambda options: run(client.get_assertion, options),
                lambda options: run(client.make_credential, options),
            )
        finally:
            await advertiser.close()


async def _main(args: argparse.Namespace) -> None:
    data = Path(args.input).read_bytes()
    async with virtual_phone(Path(args.phone_store)) as (sign_in, register):
        if args.command == "encrypt":
            result = await encrypt(data, sign_in, register)
        else:
            result = await decrypt(data, sign_in)
    Path(args.output).write_bytes(result)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--phone-store", required=True, help="the software phone's passkeys")
    parser.add_argument("command", choices=["encrypt", "decrypt"])
    parser.add_argument("input")
    parser.add_argument("output")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_main(args))
    except (HybridError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
