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

import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from signoff import durations, models, preflight, runner
from signoff.clock import Clock
from signoff.journal import EntryKind, EntryStatus, JournalEntry

if TYPE_CHECKING:
    from signoff.engine import Engine


class FakeClock:
    """A clock that only moves when told to. Thread-safe."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def advance(self, duration: durations.Duration) -> None:
        """Move time forward; due timers fire at the worker's next poll (or at once with
        `await fire_due_timers(engine)`)."""
        seconds = durations.to_seconds(duration, "duration")
        with self._lock:
            self._now += seconds

    def set(self, timestamp: float) -> None:
        with self._lock:
            self._now = timestamp


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
    await preflight.replay(
        definition, recorded["run_id"], recorded["args"], recorded["kwargs"], entries
    )


# helpers for tests of a web app's flows ------------------------------------------------


def copy_engine(
    engine: Engine,
    url: str,
    *,
    clock: Clock | None = None,
    lease: durations.Duration = "30s",
    poll_interval: durations.Duration = 0.01,
) -> Engine:
    """A new engine on `url` with `engine`'s workflows (under the same names, with their
    run timeouts), directory, default approval deadline, retry policy and event
    retention: your app's flows on a test database, with a fake clock. The app's own
    engine is left as it is."""
    from signoff.engine import Engine

    copy = Engine(
        url,
        clock=clock,
        lease=lease,
        poll_interval=poll_interval,
        default_retry=engine._default_retry,
        event_retention=engine._event_retention,
        directory=engine.directory,
        approval_timeout=engine.approval_timeout,
    )
    for name, definition in engine._registry.items():
        copy.workflow(name, timeout=definition.timeout)(definition.fn)
    return copy


async def fire_due_timers(engine: Engine, *, timeout: float = 10.0) -> list[str]:
    """Fire every timer due at `engine.clock`'s time now, as the worker's next poll would:
    approval deadlines, escalations and reminders, sleeps, signal and event timeouts.
    Then wait until each run that had a due timer is waiting again or finished, so a test
    can assert right after `clock.advance(...)` without polling. Returns those runs' ids.

    Needs the engine's worker (inside `async with engine:`) to run the woken runs."""
    import asyncio

    worker = engine._worker
    deadline = time.monotonic() + timeout
    # the worker's own poll fires what is due too: take turns, so each due run is seen
    async with contextlib.nullcontext() if worker is None else worker.timers:
        now = engine.clock.time()
        due = [run.id for run in await _waiting_runs(engine) if _due(run, now)]
        if not due:
            return []
        await _fire(engine, now, deadline)
    if engine._worker is None:
        return due  # woken, pending: a worker elsewhere runs them
    for run_id in due:
        while True:
            run = await engine.get_run(run_id)
            if run.status in _SETTLED and not _due(run, now):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after its timers fired")
            await asyncio.sleep(0.005)
    return due


_SETTLED = (
    models.RunStatus.WAITING,
    models.RunStatus.COMPLETED,
    models.RunStatus.FAILED,
    models.RunStatus.CANCELLED,
)


def _due(run: models.Run, now: float) -> bool:
    # `wake_at` went through a datetime (whole microseconds): allow for its rounding
    return (
        run.status is models.RunStatus.WAITING
        and run.wake_at is not None
        and run.wake_at.timestamp() <= now + 1e-6
    )


async def _waiting_runs(engine: Engine) -> list[models.Run]:
    runs: list[models.Run] = []
    before: tuple[float, str] | None = None
    while True:
        page = await engine.list_runs(status=models.RunStatus.WAITING, limit=500, before=before)
        runs.extend(page)
        if len(page) < 500:
            return runs
        last = page[-1]
        before = (last.created_at.timestamp(), last.id)


async def _fire(engine: Engine, now: float, deadline: float) -> None:
    """Fire due timers, handing the runs they wake to the engine's worker (if any)."""
    worker = engine._worker
    owner = None if worker is None else worker.id
    lease_until = 0.0 if worker is None else worker.lease_until
    while True:  # a due escalation or reminder wakes nothing: ask until none is due
        claims = await engine.store.fire_timers(
            now=now, limit=100, claim_for=owner, lease_until=lease_until
        )
        for claim in claims:
            if worker is not None and worker.handles(claim.run.workflow):
                worker.submit(claim)
            elif owner is not None:
                await engine.store.release(owner=owner, run_ids=[claim.run.id], now=now)
        if time.monotonic() > deadline:
            return  # the caller's wait for the runs says which one is stuck
        if not any(_due(run, now) for run in await _waiting_runs(engine)):
            return
