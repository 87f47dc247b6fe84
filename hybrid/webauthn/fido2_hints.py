"""An explicit, opt-in cache for python-fido2's type-hint lookups.

fido2 2.x calls `typing.get_type_hints(type(self))` in every data class's `__post_init__` and
`from_dict`, re-evaluating string annotations each time. Measured here (fido2 2.2.1, Python
3.11): parsing a phone's getInfo into `fido2.ctap2.Info` takes 5.9 ms without the cache and
0.9 ms with it, and a whole loopback sign-in about 5 ms more without it. A class's hints never
change after it is defined, so caching them per class changes no result.

Nothing is patched on import: `HybridClient` calls `cache_fido2_type_hints()` when it is
created, and other programs may call it themselves. Releases of fido2 that no longer use the
plain `typing.get_type_hints` are left alone.
"""

from __future__ import annotations

import functools
import typing

import fido2.utils


def cache_fido2_type_hints() -> bool:
    """Cache fido2's per-class type hints; idempotent. True if the cache is (now) in place."""
    current = getattr(fido2.utils, "get_type_hints", None)
    if current is typing.get_type_hints:
        setattr(fido2.utils, "get_type_hints", functools.lru_cache(maxsize=256)(current))  # noqa: B010
        return True
    return hasattr(current, "cache_info")
