"""The credential store file: persistence, permissions, atomic writes, refusing foreign files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.ctap2.base import AssertionResponse, AttestationResponse

from hybrid.authenticator import CredentialStore, SoftwareAuthenticator, approve_all
from hybrid.authenticator.store import STORE_FORMAT, STORE_VERSION
from hybrid.ctap import CtapStatus, decode_cbor_map
from hybrid.errors import StoreError

RP = "example.com"
CDH = b"\x22" * 32


def make_credential(user_id: bytes = b"user-1") -> bytes:
    return b"\x01" + cbor.encode(
        {
            1: CDH,
            2: {"id": RP},
            3: {"id": user_id, "name": "alice"},
            4: [{"alg": -7, "type": "public-key"}],
        }
    )


GET_ASSERTION = b"\x02" + cbor.encode({1: RP, 2: CDH})


def add(store: CredentialStore, user_id: bytes = b"u", credential_id: bytes = b"c") -> None:
    store.add(
        rp_id=RP,
        user_id=user_id,
        user_name="alice",
        user_display_name=None,
        credential_id=credential_id,
        private_key=ec.generate_private_key(ec.SECP256R1()),
    )


async def test_persists_across_instances_with_counter(tmp_path: Path) -> None:
    path = tmp_path / "passkeys.json"
    first = SoftwareAuthenticator(store=path, approve=approve_all)
    reply = await first.handle_ctap(make_credential())
    created = AttestationResponse.from_dict(decode_cbor_map(reply[1:])).auth_data.credential_data
    assert created is not None
    assert (await first.handle_ctap(GET_ASSERTION))[0] == CtapStatus.SUCCESS  # counter 1

    second = SoftwareAuthenticator(store=str(path), approve=approve_all)
    reply = await second.handle_ctap(GET_ASSERTION)
    response = AssertionResponse.from_dict(decode_cbor_map(reply[1:]))
    assert response.credential["id"] == created.credential_id
    assert response.auth_data.counter == 2
    response.verify(CDH, created.public_key)


async def test_file_is_private_versioned_and_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "passkeys.json"
    old_umask = os.umask(0)  # even a permissive umask must not widen the file
    try:
        auth = SoftwareAuthenticator(store=path, approve=approve_all)
        await auth.handle_ctap(make_credential())
        await auth.handle_ctap(GET_ASSERTION)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["format"] == STORE_FORMAT
    assert document["version"] == STORE_VERSION
    assert [c["signCount"] for c in document["credentials"]] == [1]
    # No temporary files left; the lock file stays (deleting it would race) and is private too.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passkeys.json", "passkeys.json.lock"]
    assert stat.S_IMODE((tmp_path / "passkeys.json.lock").stat().st_mode) == 0o600


def test_missing_file_is_an_empty_store_created_on_first_change(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    store = CredentialStore(path)
    assert len(store) == 0
    assert not path.exists()
    add(store)
    assert CredentialStore(path).for_rp(RP)[0].user_name == "alice"


def test_group_readable_file_is_tightened_on_next_write(tmp_path: Path) -> None:
    path = tmp_path / "passkeys.json"
    add(CredentialStore(path))
    path.chmod(0o644)
    store = CredentialStore(path)
    add(store, user_id=b"other", credential_id=b"d")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\xffnot json", "damaged"),
        (b"[1, 2, 3]", "not a fido-hybrid credential store"),
        (b'{"hello": "world"}', "not a fido-hybrid credential store"),
        (
            json.dumps({"format": STORE_FORMAT, "version": 99, "credentials": []}).encode(),
            "version 99",
        ),
        (json.dumps({"format": STORE_FORMAT, "version": 1, "credentials": {}}).encode(), "damaged"),
        (
            json.dumps(
                {"format": STORE_FORMAT, "version": 1, "credentials": [{"rpId": RP}]}
            ).encode(),
            "damaged",
        ),
    ],
    ids=["binary", "list", "foreign", "version", "credentials-not-list", "bad-entry"],
)
def test_corrupt_or_foreign_file_is_refused_and_left_alone(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "passkeys.json"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=message) as caught:
        SoftwareAuthenticator(store=path, approve=approve_all)
    assert str(path) in str(caught.value)
    assert "file was not changed" in str(caught.value)
    assert path.read_bytes() == content


def _tamper(path: Path, change: dict[str, Any]) -> None:
    document = json.loads(path.read_text())
    document["credentials"][0].update(change)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    "change",
    [
        {"privateKey": "AAAA"},
        {"privateKey": "!!not base64!!"},
        {"signCount": -1},
        {"signCount": True},
        {"userName": 5},
        {"credentialId": None},
        {"credProtect": 0},
        {"credProtect": 4},
        {"credProtect": "2"},
        {"prfSecret": "AAAA"},  # 3 bytes, not 32
        {"prfSecret": 7},
        {"largeBlob": {"data": "AAAA", "originalSize": 3}},  # does not inflate
        {"largeBlob": "blob"},
        {"discoverable": "no"},
    ],
)
def test_damaged_entries_are_refused(tmp_path: Path, change: dict[str, Any]) -> None:
    path = tmp_path / "passkeys.json"
    add(CredentialStore(path))
    _tamper(path, change)
    with pytest.raises(StoreError, match="damaged"):
        CredentialStore(path)


def test_non_p256_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "passkeys.json"
    store = CredentialStore(path)
    store.add(
        rp_id=RP,
        user_id=b"u",
        user_name=None,
        user_display_name=None,
        credential_id=b"c",
        private_key=ec.generate_private_key(ec.SECP384R1()),
    )
    with pytest.raises(StoreError, match="damaged"):
        CredentialStore(path)


def test_duplicate_credential_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "passkeys.json"
    store = CredentialStore(path)
    add(store, user_id=b"a", credential_id=b"same")
    document = json.loads(path.read_text())
    document["credentials"].append(dict(document["credentials"][0], userId="Yg"))
    path.write_text(json.dumps(document))
    with pytest.raises(StoreError, match="share a credential ID"):
        CredentialStore(path)


async def test_unwritable_store_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "passkeys.json"
    auth = SoftwareAuthenticator(store=path, approve=approve_all)
    assert await auth.handle_ctap(make_credential()) == bytes([CtapStatus.OTHER])
    assert len(auth.store) == 0  # a failed write changes nothing in memory either
    with pytest.raises(StoreError, match="Cannot write the credential store"):
        add(auth.store)


def test_unreadable_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="Cannot read the credential store"):
        CredentialStore(tmp_path)  # a directory, not a file


def test_in_memory_store_touches_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = CredentialStore()
    add(store)
    assert store.path is None
    assert list(tmp_path.iterdir()) == []
    assert repr(store) == "CredentialStore(memory, 1 credentials)"
