"""Text from the other side (a site or account name, a phone's name) made safe to show."""

from __future__ import annotations

from typing import Final

#: Longest peer-chosen name shown; the other side chooses it, not the user.
MAX_SHOWN: Final = 80


def shown(text: str | None, fallback: str) -> str:
    """`text` without control characters and bounded in length, or `fallback` if empty."""
    if not text:
        return fallback
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= MAX_SHOWN else clean[: MAX_SHOWN - 3] + "..."
