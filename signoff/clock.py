"""Where time comes from. The engine asks its clock; tests swap in `signoff.testing.FakeClock`."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def time(self) -> float:
        return time.time()


class DatabaseClock:
    """The machine's clock corrected to the database's: every process that shares a
    database judges deadlines, timers and leases by one clock, so a worker whose own clock
    runs fast neither expires approvals early nor takes over live leases. The engine
    measures the offset when it opens and its worker again every `resync` seconds."""

    resync = 60.0

    def __init__(self, local: Clock | None = None) -> None:
        self.local: Clock = local or SystemClock()
        self.offset = 0.0
        self.synced_at: float | None = None  # local time of the last measurement

    def time(self) -> float:
        return self.local.time() + self.offset

    def due(self) -> bool:
        return self.synced_at is None or self.local.time() - self.synced_at >= self.resync

    def measured(self, before: float, database: float, after: float) -> None:
        """Take the database's time read between local `before` and `after`; an offset
        within the reading's own uncertainty (half its round trip) counts as none."""
        offset = database - (before + after) / 2
        self.offset = 0.0 if abs(offset) <= (after - before) / 2 + 0.05 else offset
        self.synced_at = after
