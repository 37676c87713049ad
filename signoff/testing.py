"""Helpers for testing your own approval flows.

```python
from signoff.testing import FakeClock

clock = FakeClock()
engine = Engine("sqlite:///" + str(tmp_path / "t.db"), clock=clock, poll_interval=0.01)
async with engine:
    run = await engine.start(refund, "ord-1")
    await engine.settle(run.id)              # until it waits for a decision
    clock.advance("7d")                      # the approval's deadline passes
    assert (await engine.result(run.id))["status"] == "expired"
```
"""

from __future__ import annotations

import threading
import time

from signoff import durations


class FakeClock:
    """A clock that only moves when told to. Thread-safe."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def advance(self, duration: durations.Duration) -> None:
        """Move time forward; due timers fire at the worker's next poll."""
        seconds = durations.to_seconds(duration, "duration")
        with self._lock:
            self._now += seconds

    def set(self, timestamp: float) -> None:
        with self._lock:
            self._now = timestamp
