"""Helpers for testing your own approval flows: a fake clock, and replay of recorded
journals against the current code (so a change that would strand paused runs fails CI).

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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from signoff import context, durations, models, runner
from signoff.clock import Clock
from signoff.journal import EntryKind, EntryStatus, JournalEntry

if TYPE_CHECKING:
    from signoff.engine import Engine
    from signoff.store.sql_waits import WaitOutcome


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


class _PastJournal(BaseException):
    """Replay reached a call the record does not hold: everything recorded matched."""


class _ReplayHost:
    """Stands in for an execution during `replay`: it never writes and never runs a step."""

    def __init__(self, run_id: str, workflow: str) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.default_retry = models.RetryPolicy()
        self.clock: Clock = FakeClock()

    def beyond_journal(self) -> None:
        raise _PastJournal

    async def write_step(self, *args: Any, **kwargs: Any) -> None:
        raise _PastJournal

    async def attempt_failed(self, *args: Any, **kwargs: Any) -> None:
        raise _PastJournal

    async def open_wait(self, **kwargs: Any) -> WaitOutcome:
        raise _PastJournal

    async def park(self, seqs: list[int], extra: list[JournalEntry]) -> dict[int, str | None]:
        raise _PastJournal  # the record ends waiting here

    async def close_waits(self, seqs: list[int], extra: list[JournalEntry]) -> None:
        raise _PastJournal


async def export_journal(engine: Engine, run_id: str) -> dict[str, Any]:
    """A run's journal as JSON data, to save as a replay fixture (see `replay`)."""
    run = await engine.get_run(run_id)
    entries = await engine.store.get_journal(run_id)
    return {
        "run_id": run.id,
        "workflow": run.workflow,
        "args": run.args,
        "kwargs": run.kwargs,
        "entries": [
            {
                "seq": e.seq,
                "kind": e.kind.value,
                "name": e.name,
                "status": e.status.value,
                "result": e.result,
                "error": e.error,
                "path": e.path,
            }
            for e in entries
        ],
    }


async def replay(workflow: Callable[..., Awaitable[Any]], recorded: dict[str, Any]) -> None:
    """Replay `workflow`'s current code against a recorded journal (from `export_journal`).

    Nothing runs and nothing is written: recorded steps return their recorded results.
    Raises `NonDeterminismError` when the code no longer makes the recorded calls in the
    recorded order; returns when everything recorded matched. Keep recorded journals of
    your workflows in your tests so a change that would strand paused runs fails CI.
    """
    entries = [
        JournalEntry(
            seq=e["seq"],
            kind=EntryKind(e["kind"]),
            name=e["name"],
            status=EntryStatus(e["status"]),
            result=e["result"],
            error=e["error"],
            path=e.get("path"),
        )
        for e in recorded["entries"]
    ]
    name = getattr(workflow, "__signoff_workflow__", None) or workflow.__qualname__
    definition = runner.WorkflowDef.of(name, workflow)
    ctx = context.Context(_ReplayHost(recorded["run_id"], name), entries)
    token = context._current.set(ctx)
    ctx.enter()
    try:
        args, kwargs = definition.decode(recorded["args"], recorded["kwargs"])
        try:
            try:
                await workflow(ctx, *args, **kwargs)
            finally:
                await ctx.stop()
        except (_PastJournal, context.Suspended):
            return
        except Exception:
            if ctx.fatal is not None:
                raise ctx.fatal from None
            if ctx.unreplayed() is None:
                return  # failed where the recorded run failed
            raise
        ctx.check_ended()
    finally:
        context._current.reset(token)
