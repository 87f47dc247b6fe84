"""The requests programs send a key before the one that counts, and how the bridge keeps them.

A USB key answers a silent getAssertion (`up: false`) at once; a phone answers one command per
QR code and never silently. So the bridge never answers a probe with anything the phone did
not say (docs/bridge-sequences.md has the sequences and the reasoning):

- A probe carrying the request's real clientDataHash (browsers) is the sign-in itself: the
  phone is asked once, its real answer goes back to the probe and is kept, keyed by site and
  clientDataHash, for the request that follows (`AnswerCache`).
- A probe carrying an all-zero clientDataHash (python-fido2's allow/exclude-list filter) cannot
  be signed usefully by anyone. It is answered CTAP2_ERR_NO_CREDENTIALS without the phone, and
  the list it probed is kept (`ProbedLists`) and put back into the request that follows, which
  python-fido2 then sends with a placeholder allowList (`[{id: 00}]`) or without its
  excludeList: the phone decides on the real list.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

#: How long a probe's answer or list is kept for the request that follows it.
KEEP_SECONDS: Final = 60.0
#: At most this many sites' probes are kept; the oldest is dropped first.
MAX_SITES: Final = 16
#: At most this many credential descriptors per site (the largest CTAPHID message holds ~100).
MAX_DESCRIPTORS: Final = 128
ZERO_HASH: Final = bytes(32)
#: The descriptor python-fido2 puts in an allowList when every probe said NO_CREDENTIALS.
PLACEHOLDER_ID: Final = b"\0"


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
