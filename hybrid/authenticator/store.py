"""The software authenticator's passkeys: in memory, or in a private JSON file.

The file is rewritten atomically (temporary file in the same directory, fsync, `os.replace`)
with mode 0600 so a crash never leaves half a store and other users never read private keys.
Every change is a read-modify-write under an exclusive lock, so processes can share a file.
A file that is not ours, or is damaged, is refused with `StoreError` and left untouched:
silently replacing it would destroy passkeys the user cannot get back.
"""

from __future__ import annotations

import binascii
import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Final, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from hybrid.authenticator.extensions import CredProtect, LargeBlob
from hybrid.authenticator.stored_credential import MAX_SIGN_COUNT
from hybrid.authenticator.stored_credential import StoredCredential as StoredCredential
from hybrid.errors import StoreError

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

STORE_FORMAT: Final = "fido-hybrid/credential-store"
STORE_VERSION: Final = 1
LOCK_SUFFIX: Final = ".lock"
TEMPORARY_SUFFIX: Final = ".tmp"
LOCK_TIMEOUT = 10.0  # seconds; every change holds the lock for milliseconds


class CredentialStore:
    """Discoverable credentials by RP; with a path, the file is the truth and may be shared.

    Several processes may use one file at once: every change re-reads the file under an
    exclusive `fcntl.flock` on a lock file beside it and applies only that change, so no
    process writes back a stale copy over another's passkey or counter.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._path = Path(path) if path is not None else None
        self._credentials: list[StoredCredential] = []
        if self._path is not None:
            with self._locked(self._path, required=False) as locked:
                if locked:  # unlocked: a missing or read-only folder holds nothing to remove
                    _remove_stale_temporary_files(self._path)
                self._credentials = self._load(self._path)
            _warn_if_shared(self._path)

    def __repr__(self) -> str:
        where = str(self._path) if self._path else "memory"
        return f"CredentialStore({where}, {len(self._credentials)} credentials)"

    def __len__(self) -> int:
        return len(self._current())

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
            for c in self._current()
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
        prf_secret: bytes | None = None,
        cred_protect: CredProtect = CredProtect.UV_OPTIONAL,
        discoverable: bool = True,
    ) -> StoredCredential:
        """Store a new credential; a discoverable one replaces the user's old discoverable
        one on the same RP (as phones and keys do)."""

        def add_to(credentials: list[StoredCredential]) -> StoredCredential:
            credential = StoredCredential(
                credential_id=credential_id,
                rp_id=rp_id,
                user_id=user_id,
                user_name=user_name,
                user_display_name=user_display_name,
                private_key=private_key,
                created=max((c.created for c in credentials), default=0) + 1,
                prf_secret=prf_secret,
                cred_protect=cred_protect,
                discoverable=discoverable,
            )
            credentials[:] = [
                c
                for c in credentials
                if not (
                    discoverable and c.discoverable and c.rp_id == rp_id and c.user_id == user_id
                )
                and c.credential_id != credential_id
            ]
            credentials.append(credential)
            return credential

        return self._change(add_to)

    def next_sign_count(self, credential: StoredCredential) -> int | None:
        """Increment and persist the credential's signature counter; return the new value.

        None: the credential was removed meanwhile.
        """
        used = self.use(credential)
        return None if used is None else used.sign_count

    def use(
        self, credential: StoredCredential, *, large_blob: LargeBlob | None = None
    ) -> StoredCredential | None:
        """Count one assertion and, if given, save its new large blob, as one change.

        The increment applies to the counter as stored now, not to `credential`'s snapshot,
        so concurrent sign-ins never lose a step. Returns the credential as saved; None: it
        was removed meanwhile (and nothing was written).
        """

        def count(credentials: list[StoredCredential]) -> StoredCredential | None:
            for index, current in enumerate(credentials):
                if current.credential_id == credential.credential_id:
                    updated = replace(
                        current,
                        sign_count=min(current.sign_count + 1, MAX_SIGN_COUNT),
                        large_blob=current.large_blob if large_blob is None else large_blob,
                    )
                    credentials[index] = updated
                    return updated
            return None

        return self._change(count)

    def _current(self) -> list[StoredCredential]:
        """The credentials as stored right now (another process may have changed the file)."""
        if self._path is not None:
            self._credentials = self._load(self._path)
        return self._credentials

    def _change(self, apply: Callable[[list[StoredCredential]], _T]) -> _T:
        """Read-modify-write one change under the lock; a failed write changes nothing."""
        if self._path is None:
            credentials = list(self._credentials)
            result = apply(credentials)
            self._credentials = credentials
            return result
        with self._locked(self._path):
            credentials = self._load(self._path)
            result = apply(credentials)
            self._save(self._path, credentials)
            self._credentials = credentials
            return result

    @staticmethod
    @contextlib.contextmanager
    def _locked(path: Path, *, required: bool = True) -> Iterator[bool]:
        """Hold an exclusive lock on `path`'s lock file (kept forever: deleting it races).

        Yields whether the lock is held; only a `required=False` caller can get False.
        """
        lock_path = path.with_name(path.name + LOCK_SUFFIX)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if required:
                raise StoreError(
                    f"Cannot write the credential store {path}: its lock file {lock_path} "
                    f"cannot be opened ({exc.strerror or exc}). Check that the folder exists "
                    "and is writable."
                ) from exc
            fd = None
        if fd is None:
            yield False
            return
        try:
            _wait_for_lock(fd, lock_path)
            yield True
        finally:
            os.close(fd)  # closing releases the lock

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
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=directory
            )
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


def _wait_for_lock(fd: int, lock_path: Path) -> None:
    """Take the exclusive lock; a holder that never lets go (a stopped process) is an error."""
    deadline = time.monotonic() + LOCK_TIMEOUT
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"Another process has held the credential store lock {lock_path} for "
                    f"{LOCK_TIMEOUT:g} s: let it finish or stop it, then try again."
                ) from None
            time.sleep(delay)  # changes take milliseconds, so the wait is short
            delay = min(delay * 2, 0.05)
        except OSError as exc:
            raise StoreError(
                f"Cannot lock the credential store lock file {lock_path} "
                f"({exc.strerror or exc}): put the store on a local file system."
            ) from exc


def _warn_if_shared(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            logger.warning(
                "credential store %s is readable by other users; it will be "
                "rewritten with mode 0600 on the next change",
                path,
            )


def _remove_stale_temporary_files(path: Path) -> None:
    """Delete what a crash between write and rename left: a full copy of every private key.

    Called under the lock, so no other process is writing a temporary file right now.
    """
    prefix, directory = f".{path.name}.", path.parent
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            if entry.name.startswith(prefix) and entry.name.endswith(TEMPORARY_SUFFIX):
                with contextlib.suppress(OSError):
                    entry.unlink()
                    logger.warning("removed %s, left behind by an interrupted write", entry)


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
