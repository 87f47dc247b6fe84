"""examples/prf_encrypt.py: a file sealed with the phone's PRF output, end to end (subprocesses
in the virtual setup), and the file format's failure modes."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from examples.prf_encrypt import HKDF_INFO, MAGIC, SealedFileError, read_header, seal, unseal
from hybrid.authenticator import CredentialStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prf_encrypt.py"


def _run(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), "--phone-store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_encrypt_then_decrypt_with_the_phone(tmp_path: Path) -> None:
    store = tmp_path / "phone.json"
    plain = tmp_path / "notes.txt"
    plain.write_bytes("password manager vault ✓\n".encode() * 50)
    sealed, again, restored = tmp_path / "a.sealed", tmp_path / "b.sealed", tmp_path / "out"

    for output in (sealed, again):
        result = _run(store, "encrypt", str(plain), str(output))
        assert result.returncode == 0, result.stderr
    result = _run(store, "decrypt", str(sealed), str(restored))
    assert result.returncode == 0, result.stderr
    assert restored.read_bytes() == plain.read_bytes()

    (credential,) = CredentialStore(store).for_rp("example.com")  # registered once, reused
    assert credential.prf_secret is not None
    credential_id, salt, nonce, body = read_header(sealed.read_bytes())
    assert credential_id == credential.credential_id
    assert read_header(again.read_bytes())[1] != salt  # a fresh salt per file
    # The key is HKDF(HMAC(the credential's PRF secret, SHA-256("WebAuthn PRF" 0 salt))).
    prf = hmac.new(
        credential.prf_secret,
        hashlib.sha256(b"WebAuthn PRF\x00" + salt).digest(),
        hashlib.sha256,
    ).digest()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=HKDF_INFO).derive(prf)
    data = sealed.read_bytes()
    assert AESGCM(key).decrypt(nonce, data[body:], data[:body]) == plain.read_bytes()


def test_tampered_file_and_foreign_phone_decrypt_nothing(tmp_path: Path) -> None:
    store, plain, sealed = tmp_path / "phone.json", tmp_path / "p", tmp_path / "s"
    plain.write_bytes(b"secret")
    assert _run(store, "encrypt", str(plain), str(sealed)).returncode == 0

    tampered = bytearray(sealed.read_bytes())
    tampered[-1] ^= 1
    (tmp_path / "t").write_bytes(bytes(tampered))
    assert _run(store, "decrypt", str(tmp_path / "t"), str(tmp_path / "out")).returncode == 1
    # another phone has no such passkey: the sign-in is refused, nothing is written
    other = _run(tmp_path / "other.json", "decrypt", str(sealed), str(tmp_path / "out"))
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "data",
    [b"", b"not sealed at all", MAGIC, MAGIC + b"\x00" + bytes(80), MAGIC + b"\x10" + bytes(40)],
)
def test_malformed_sealed_files_are_refused(data: bytes) -> None:
    with pytest.raises(SealedFileError):
        read_header(data)


def test_wrong_prf_output_decrypts_nothing() -> None:
    sealed = seal(b"vault", b"\x01" * 16, b"\x02" * 32, b"\x03" * 32)
    assert unseal(sealed, b"\x03" * 32) == b"vault"
    with pytest.raises(SealedFileError):
        unseal(sealed, b"\x04" * 32)
