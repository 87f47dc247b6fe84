"""One store file shared by several processes never loses a passkey or a counter step.

The workers are real Python processes (store_worker.py) that each read the store before any
of them writes, the worst case for a store that writes back what it read.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import hybrid.authenticator.store as store_module
from hybrid.authenticator import CredentialStore
from hybrid.errors import StoreError

WORKER = Path(__file__).with_name("store_worker.py")
TIMEOUT = 60


@contextmanager
def workers(path: Path, jobs: list[list[str]]) -> Iterator[list[subprocess.Popen[str]]]:
    """Start one worker per job, wait until each has read the store, then let all go at once."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(path), *job],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.close()
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(TIMEOUT)
            if process.stdout is not None:
                process.stdout.close()


def add(store: CredentialStore, rp_id: str, credential_id: bytes) -> None:
    store.add(
        rp_id=rp_id,
        user_id=b"user",
        user_name="alice",
        user_display_name=None,
        credential_id=credential_id,
        private_key=ec.generate_private_key(ec.SECP256R1()),
    )


def stored(path: Path) -> dict[str, int]:
    """rpId -> signCount, straight from the file."""
    document = json.loads(path.read_text())
    return {entry["rpId"]: entry["signCount"] for entry in document["credentials"]}


def test_registering_while_another_store_signs_in_keeps_both(tmp_path: Path) -> None:
    """The issue's scenario: A registers b.example while B signs in to a.example."""
    path = tmp_path / "passkeys.json"
    add(CredentialStore(path), "a.example", b"a")
    first, second = CredentialStore(path), CredentialStore(path)
    add(first, "b.example", b"b")
    (credential,) = second.for_rp("a.example")
    assert second.next_sign_count(credential) == 1
    assert stored(path) == {"a.example": 1, "b.example": 0}
    assert [c.credential_id for c in second.for_rp("b.example")] == [b"b"]  # sees A's passkey
    assert len(first) == len(second) == 2


def test_eight_processes_adding_at_once_keep_all_eight(tmp_path: Path) -> None:
    path = tmp_path / "passkeys.json"
    with workers(path, [["add", str(n)] for n in range(8)]) as processes:
        assert [p.wait(TIMEOUT) for p in processes] == [0] * 8
    assert stored(path) == {f"site{n}.example": 0 for n in range(8)}
    assert len(CredentialStore(path)) == 8


def test_concurrent_sign_ins_never_lose_or_repeat_a_counter(tmp_path: Path) -> None:
    path = tmp_path / "passkeys.json"
    add(CredentialStore(path), "example.com", b"shared")
    processes_count, rounds = 4, 10
    with workers(path, [["sign", str(rounds)]] * processes_count) as processes:
        outputs = [p.stdout.read() if p.stdout else "" for p in processes]
        assert [p.wait(TIMEOUT) for p in processes] == [0] * processes_count
    seen = []
    for output in outputs:
        counters = [int(c) for c in output.split()]
        assert len(counters) == rounds
        assert counters == sorted(set(counters))  # strictly increasing within a process
        seen.extend(counters)
    total = processes_count * rounds
    assert sorted(seen) == list(range(1, total + 1))  # every step once, none lost
    assert stored(path) == {"example.com": total}


def test_crash_before_the_rename_leaves_no_key_copy_behind(tmp_path: Path) -> None:
    path = tmp_path / "passkeys.json"
    add(CredentialStore(path), "example.com", b"kept")
    before = path.read_bytes()
    with workers(path, [["crash"]]) as (process,):
        assert process.wait(TIMEOUT) == 9
    leftovers = [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    assert len(leftovers) == 1  # the dead process's full copy of every private key
    assert path.read_bytes() == before  # the store itself is untouched

    unrelated = tmp_path / ".other.json.abc.tmp"
    unrelated.write_text("another store's business")
    store = CredentialStore(path)
    assert [c.credential_id for c in store.for_rp("example.com")] == [b"kept"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["passkeys.json", "passkeys.json.lock", unrelated.name]
    )


def test_a_lock_held_too_long_is_a_store_error_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "passkeys.json"
    shared = CredentialStore(path)
    add(shared, "example.com", b"first")
    before = path.read_bytes()
    monkeypatch.setattr(store_module, "LOCK_TIMEOUT", 0.2)
    holder = os.open(tmp_path / "passkeys.json.lock", os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # a stopped process that never lets go
        with pytest.raises(StoreError) as caught:
            add(shared, "other.example", b"second")
        assert str(tmp_path / "passkeys.json.lock") in str(caught.value)
    finally:
        os.close(holder)
    assert path.read_bytes() == before
    add(shared, "other.example", b"second")  # released: the store works again
    assert stored(path) == {"example.com": 0, "other.example": 0}
