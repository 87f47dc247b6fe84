"""The software authenticator's passkeys: in memory, or in a private JSON file.

The file is rewritten atomically (temporary file in the same directory, fsync, `os.replace`)
with mode 0600 so a crash never leaves half a store and other users never read private keys.
A file that is not ours, or is damaged, is refused with `StoreError` and left untouched:
silently replacing it would destroy passkeys the user cannot get back.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.utils import websafe_decode, websafe_encode

from hybrid.errors import StoreError

logger = logging.getLogger(__name__)

STORE_FORMAT: Final = "fido-hybrid/credential-store"
STORE_VERSION: Final = 1
MAX_SIGN_COUNT: Final = 0xFFFFFFFF


@dataclass(frozen=True)
class StoredCredential:
    """One discoverable P-256 credential; the private key stays out of repr and comparisons."""

    credential_id: bytes
    rp_id: str
    user_id: bytes
    user_name: str | None
    user_display_name: str | None
    private_key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)
    sign_count: int = 0
    created: int = 0  # creation order, so "most recent" needs no clock

    def to_json(self) -> dict[str, Any]:
        der = self.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            "credentialId": websafe_encode(self.credential_id),
            "rpId": self.rp_id,
            "userId": websafe_encode(self.user_id),
            "userName": self.user_name,
            "userDisplayName": self.user_display_name,
            "privateKey": websafe_encode(der),
            "signCount": self.sign_count,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, data: Any) -> StoredCredential:
        """Parse one stored entry; raises ValueError/TypeError/KeyError on anything odd."""
        if not isinstance(data, dict):
            raise TypeError("credential entry is not an object")
        key = serialization.load_der_private_key(websafe_decode(_str(data, "privateKey")), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise ValueError("private key is not a P-256 key")
        count, created = data["signCount"], data["created"]
        if not _is_uint(count, MAX_SIGN_COUNT) or not _is_uint(created, 2**63):
            raise ValueError("bad signCount or created")
        return cls(
            credential_id=websafe_decode(_str(data, "credentialId")),
            rp_id=_str(data, "rpId"),
            user_id=websafe_decode(_str(data, "userId")),
            user_name=_optional_str(data, "userName"),
            user_display_name=_optional_str(data, "userDisplayName"),
            private_key=key,
            sign_count=count,
            created=created,
        )


def _is_uint(value: object, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def _str(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


class CredentialStore:
    """Discoverable credentials by RP; persisted after every change when it has a path."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._path = Path(path) if path is not None else None
        self._credentials: list[StoredCredential] = []
        if self._path is not None:
            self._credentials = self._load(self._path)

    def __repr__(self) -> str:
        where = str(self._path) if self._path else "memory"
        return f"CredentialStore({where}, {len(self._credentials)} credentials)"

    def __len__(self) -> int:
        return len(self._credentials)

    @property
    def path(self) -> Path | None:
        return self._path

    def for_rp(
        self, rp_id: str, credential_ids: Iterable[bytes] | None = None
    ) -> list[StoredCredential]:
        """Credentials of `rp_id`, newest first; only those in `credential_ids` if given."""
        wanted = None if credential_ids is None else set(credential_ids)
        found = [
            c
            for c in self._credentials
            if c.rp_id == rp_id and (wanted is None or c.credential_id in wanted)
        ]
        return sorted(found, key=lambda c: c.created, reverse=True)

    def add(
        self,
        *,
        rp_id: str,
        user_id: bytes,
        user_name: str | None,
        user_display_name: str | None,
        credential_id: bytes,
        private_key: ec.EllipticCurvePrivateKey,
    ) -> StoredCredential:
        """Store a new credential, replacing the user's old one on the same RP (as phones do)."""
        created = max((c.created for c in self._credentials), default=0) + 1
        credential = StoredCredential(
            credential_id=credential_id,
            rp_id=rp_id,
            user_id=user_id,
            user_name=user_name,
            user_display_name=user_display_name,
            private_key=private_key,
            created=created,
        )
        kept = [c for c in self._credentials if not (c.rp_id == rp_id and c.user_id == user_id)]
        self._commit([*kept, credential])
        return credential

    def next_sign_count(self, credential: StoredCredential) -> int:
        """Increment and persist the credential's signature counter; return the new value."""
        count = min(credential.sign_count + 1, MAX_SIGN_COUNT)
        updated = [
            replace(c, sign_count=count) if c.credential_id == credential.credential_id else c
            for c in self._credentials
        ]
        self._commit(updated)
        return count

    def _commit(self, credentials: list[StoredCredential]) -> None:
        """Persist first, then swap in memory: a failed write changes nothing."""
        if self._path is not None:
            self._save(self._path, credentials)
        self._credentials = credentials

    @staticmethod
    def _load(path: Path) -> list[StoredCredential]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(
                f"Cannot read the credential store {path} ({exc.strerror}): check its "
                "permissions, or pass another path."
            ) from exc
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise _corrupt(path, "it is not JSON") from exc
        if not isinstance(document, dict) or document.get("format") != STORE_FORMAT:
            raise StoreError(
                f"{path} is not a fido-hybrid credential store (no '{STORE_FORMAT}' format "
                "marker): pass the path of a credential store, or a new file name. The file "
                "was not changed."
            )
        if document.get("version") != STORE_VERSION:
            raise StoreError(
                f"The credential store {path} has version {document.get('version')!r}, but "
                f"this program reads version {STORE_VERSION}: use the program version that "
                "wrote it. The file was not changed."
            )
        entries = document.get("credentials")
        if not isinstance(entries, list):
            raise _corrupt(path, "'credentials' is not a list")
        try:
            credentials = [StoredCredential.from_json(entry) for entry in entries]
        except (KeyError, TypeError, ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
            raise _corrupt(path, "a credential entry is damaged") from exc
        ids = [c.credential_id for c in credentials]
        if len(set(ids)) != len(ids):
            raise _corrupt(path, "two entries share a credential ID")
        with contextlib.suppress(OSError):
            if path.stat().st_mode & 0o077:
                logger.warning(
                    "credential store %s is readable by other users; it will be "
                    "rewritten with mode 0600 on the next change",
                    path,
                )
        return credentials

    @staticmethod
    def _save(path: Path, credentials: list[StoredCredential]) -> None:
        document = {
            "format": STORE_FORMAT,
            "version": STORE_VERSION,
            "credentials": [c.to_json() for c in credentials],
        }
        data = json.dumps(document, indent=1).encode()
        directory = path.parent
        tmp_name: str | None = None
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "wb") as tmp:
                os.fchmod(tmp.fileno(), 0o600)
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
            _fsync_directory(directory)
        except OSError as exc:
            raise StoreError(
                f"Cannot write the credential store {path} ({exc.strerror or exc}): check "
                "that the directory exists and is writable, and that the disk is not full."
            ) from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; not every platform lets a directory be opened, so best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _corrupt(path: Path, why: str) -> StoreError:
    return StoreError(
        f"The credential store {path} is damaged ({why}): restore it from a backup, or move it "
        "aside to start with an empty store. The file was not changed."
    )
