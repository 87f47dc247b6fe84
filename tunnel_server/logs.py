"""Structured (logfmt) logging: one `key=value` line per event, never a payload or a full ID.

Callers pass only counts, reasons, short IDs (`paths.short_id`) and client addresses, so a log
shipped elsewhere cannot be used to join or read someone's tunnel.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

logger = logging.getLogger("tunnel_server")


def log_event(level: int, event: str, **fields: object) -> None:
    """Log `event` with fields; free when the level is off (the relay logs per tunnel)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})


class RateLimitedLog:
    """At most one line per second per event and reason, so a flood of refusals cannot flood
    the log; the next line says how many were held back (the metrics count every one)."""

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, level: int, event: str, **fields: object) -> None:
        if not logger.isEnabledFor(level):
            return
        key = f"{event}:{fields.get('reason', '')}"
        now = self._clock()
        if now - self._last.get(key, -self._interval) < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            fields["suppressed"] = held
        logger.log(level, event, extra={"fields": fields})


def _value(value: object) -> str:
    """`value` as a logfmt value: quoted and escaped (`\\u001b`) unless plainly printable.

    Same rule as `hybrid.text.printable`, but escaped rather than replaced, so a log reader
    sees exactly what a client sent while no ESC, bidi override or line break reaches the log.
    """
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    if not text or not text.isprintable() or any(c in text for c in ' "=\\'):
        return json.dumps(text, ensure_ascii=True)
    return text


class LogfmtFormatter(logging.Formatter):
    """Renders records as `ts=… level=… logger=… event=… key=value…`."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"event={_value(record.getMessage())}",
        ]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            parts.extend(f"{key}={_value(val)}" for key, val in fields.items())
        if record.exc_info:
            parts.append(f"exc={_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


def configure_logging(level: str) -> None:
    """Send logfmt lines to stderr (stdout carries only the `listening on` line).

    websockets' own logger stays at WARNING or above even with DEBUG: its debug lines carry
    request paths (full tunnel IDs) and frame bytes, and its per-connection INFO lines cost CPU
    while saying nothing the server's own events don't.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric)
    logging.getLogger("websockets").setLevel(max(numeric, logging.WARNING))
