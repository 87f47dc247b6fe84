"""Text from the other side made safe to show on a terminal or write to a log.

A phone chooses its own name, a desktop the site and account names a phone shows, a tunnel
server its close reasons and HTTP headers. None of it may reach a terminal raw: ESC sequences
rewrite the screen, bidi overrides reorder what is read, line breaks forge log lines.
Pure and standard-library only, so every layer (the tunnel server too) may use it.
"""

from __future__ import annotations

from typing import Final

#: Longest peer-chosen name shown; the other side chooses it, not the user.
MAX_SHOWN: Final = 80
#: Longest site (rpId) shown: as long as an rpId may be, so a site is always shown whole.
MAX_SITE_SHOWN: Final = 255
#: Stands in for every character that is not safe to show.
REPLACEMENT: Final = "?"
_ELLIPSIS: Final = "..."


def printable(text: str) -> str:
    """`text` with every character `str.isprintable` rejects replaced by "?".

    That is C0 and C1 controls (ESC, CR, LF, DEL, CSI, ...), format characters such as the
    bidi overrides U+202A-U+202E and isolates U+2066-U+2069, line and paragraph separators,
    spaces other than " ", surrogates and unassigned code points.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else REPLACEMENT for c in text)


def printable_lines(text: str) -> str:
    """`printable` for each line of a multi-line text (a traceback), keeping its line breaks."""
    return "\n".join(printable(line) for line in text.split("\n"))


def shown(text: str | None, fallback: str, *, limit: int = MAX_SHOWN) -> str:
    """`printable(text)` at most `limit` characters long, or `fallback` if `text` is empty.

    A longer text keeps its start and its end around "...": the end of a name or domain
    (`bank.example.evil.test`) is what a reader needs to see.
    """
    if not text:
        return fallback
    clean = printable(text)
    if len(clean) <= limit:
        return clean
    head = (limit - len(_ELLIPSIS)) // 2
    tail = limit - len(_ELLIPSIS) - head
    return clean[:head] + _ELLIPSIS + clean[len(clean) - tail :]
