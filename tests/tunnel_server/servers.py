"""What the tunnel server tests share: the server factory's type and a TLS certificate."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tunnel_server import TunnelServer

#: The `make_server` fixture: starts a server with config overrides.
ServerFactory = Callable[..., Awaitable[TunnelServer]]


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A one-hour certificate for `localhost` and its key, as PEM files in `tmp_path`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def tls_server(
    make_server: ServerFactory, tmp_path: Path, **overrides: object
) -> tuple[TunnelServer, Path]:
    """A server on wss://localhost with a fresh self-signed certificate, and that certificate."""
    cert, key = self_signed(tmp_path)
    server = await make_server(host="localhost", tls_cert=str(cert), tls_key=str(key), **overrides)
    return server, cert
