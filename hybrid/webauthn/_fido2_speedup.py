"""Cache fido2's per-instance type-hint lookups.

fido2 2.x calls `typing.get_type_hints(type(self))` in every data class's `__post_init__` and
`from_dict`, re-evaluating string annotations each time: about a third of a millisecond per
hybrid sign-in, a third of what the desktop spends in Python. A class's hints never change
after it is defined, so caching them per class changes no result. Applied only while fido2
still uses the plain `typing.get_type_hints` (newer releases are left alone).
"""

from __future__ import annotations

import functools
import typing

import fido2.utils


def install() -> None:
    """Idempotent."""
    if getattr(fido2.utils, "get_type_hints", None) is typing.get_type_hints:
        cached = functools.lru_cache(maxsize=256)(typing.get_type_hints)
        setattr(fido2.utils, "get_type_hints", cached)  # noqa: B010
