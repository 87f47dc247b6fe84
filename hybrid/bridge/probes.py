"""The requests programs send a key before the one that counts, and how the bridge keeps them.

A USB key answers a silent getAssertion (`up: false`) at once; a phone answers one command per
QR code and never silently. The bridge never answers a probe with anything the phone did not
say (docs/bridge-sequences.md has each client's sequence, with sources, and the reasoning):

- A probe carrying the request's real clientDataHash (Chromium) is the sign-in itself: the
  phone is asked once, its real answer goes back to the probe and is kept, keyed by site and
  clientDataHash, for the request that follows (`AnswerCache`).
- A probe carrying a constant clientDataHash — 32 zero bytes (python-fido2) or SHA-256("")
  (Firefox, Chromium's excludeList) — belongs to no ceremony. It is answered
  CTAP2_ERR_NO_CREDENTIALS without the phone (true of the bridge: it holds none and cannot
  sign silently), and the list it probed is kept (`ProbedLists`) and put back into the request
  that follows, which then comes with a placeholder allowList (`[{id: 00}]`) or without its
  excludeList: the phone decides on the real list.
- Touch requests (a dummy makeCredential) are never forwarded: they would make a real passkey
  for a fake site on the phone.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

#: How long a probe's answer or list is kept for the request that follows it.
KEEP_SECONDS: Final = 30.0
#: At most this many sites' probes are kept; the oldest is dropped first.
MAX_SITES: Final = 16
#: At most this many credential descriptors per site (the largest CTAPHID message holds ~100).
MAX_DESCRIPTORS: Final = 128
ZERO_HASH: Final = bytes(32)
EMPTY_HASH: Final = hashlib.sha256(b"").digest()
#: The clientDataHash values of probes that belong to no ceremony.
CONSTANT_HASHES: Final = frozenset({ZERO_HASH, EMPTY_HASH})
#: The sites of touch requests: Chromium's kDummyRpID and authenticator-rs's blink request.
DUMMY_RP_IDS: Final = frozenset({".dummy", "make.me.blink"})
#: The descriptor python-fido2 puts in an allowList when every probe said NO_CREDENTIALS.
PLACEHOLDER_ID: Final = b"\0"


def is_appid(rp_id: str) -> bool:
    """A U2F AppID probe (Chromium's appid/appidExclude): phones hold no such credentials."""
    return rp_id.startswith(("https://", "http://"))


def is_placeholder(descriptors: Any) -> bool:
    """Whether an allowList is python-fido2's "nothing matched" placeholder."""
    return (
        isinstance(descriptors, list)
        and len(descriptors) == 1
        and isinstance(descriptors[0], dict)
        and descriptors[0].get("id") == PLACEHOLDER_ID
    )


@dataclass
class _Kept:
    since: float
    descriptors: list[Any] = field(default_factory=list)


class ProbedLists:
    """Credential descriptors that zero-hash probes asked about, per site, for a short while."""

    def __init__(self) -> None:
        self._sites: OrderedDict[str, _Kept] = OrderedDict()

    def remember(self, rp_id: str, descriptors: list[Any], now: float) -> None:
        kept = self._fresh(rp_id, now)
        if kept is None:
            kept = self._sites[rp_id] = _Kept(now)
            while len(self._sites) > MAX_SITES:
                self._sites.popitem(last=False)
        for descriptor in descriptors:
            if descriptor not in kept.descriptors and len(kept.descriptors) < MAX_DESCRIPTORS:
                kept.descriptors.append(descriptor)

    def take(self, rp_id: str, now: float) -> list[Any] | None:
        """The site's probed descriptors, forgotten once taken; None if there are none."""
        kept = self._fresh(rp_id, now)
        self._sites.pop(rp_id, None)
        return kept.descriptors if kept is not None else None

    def take_latest(self, now: float) -> str | None:
        """The site probed last, if recent, forgotten: a touch request right after a probe
        means the client gave up on it (Firefox's sign-in with an allowList)."""
        if not self._sites:
            return None
        rp_id = next(reversed(self._sites))
        return rp_id if self.take(rp_id, now) is not None else None

    def _fresh(self, rp_id: str, now: float) -> _Kept | None:
        kept = self._sites.get(rp_id)
        if kept is not None and now - kept.since > KEEP_SECONDS:
            del self._sites[rp_id]
            return None
        return kept


class AnswerCache:
    """The phone's answers to probes, per (site, clientDataHash), each given out once."""

    def __init__(self) -> None:
        self._answers: OrderedDict[tuple[str, bytes], tuple[float, bytes]] = OrderedDict()

    def keep(self, rp_id: str, client_data_hash: bytes, reply: bytes, now: float) -> None:
        self._answers[rp_id, client_data_hash] = (now, reply)
        while len(self._answers) > MAX_SITES:
            self._answers.popitem(last=False)

    def take(self, rp_id: str, client_data_hash: bytes, now: float) -> bytes | None:
        kept = self._answers.pop((rp_id, client_data_hash), None)
        if kept is None or now - kept[0] > KEEP_SECONDS:
            return None
        return kept[1]
