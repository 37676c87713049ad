"""Durations as users write them: a `timedelta`, seconds, or "30s", "4h", "1h30m", "7d"."""

from __future__ import annotations

import re
from datetime import timedelta

from signoff import errors

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")

Duration = timedelta | int | float | str


def to_seconds(value: Duration, what: str = "duration") -> float:
    """Return the duration in seconds; raise `InvalidDuration` naming `what` if it is not one."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise errors.InvalidDuration(f"{what}={value!r} is not a duration")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse(value.strip().lower(), what)
    else:
        raise errors.InvalidDuration(
            f"{what}={value!r} is not a duration; use a timedelta, seconds, or text like '4h'"
        )
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise errors.InvalidDuration(f"{what}={value!r} must be a finite, non-negative duration")
    return seconds


def _parse(text: str, what: str) -> float:
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise errors.InvalidDuration(
            f"{what}={text!r} is not a duration; write it like '30s', '15m', '4h', '7d' or '1h30m'"
        )
    return total
