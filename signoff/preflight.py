"""Preflight: would the code about to be deployed still replay the runs that wait?

`engine.check()` (and `signoff check APP`) replays the journal of every unfinished run
against the workflows registered on the engine, without running a step or writing
anything, and lists the runs that would fail: the position, the recorded call and the
call the new code makes. Run it in the deploy pipeline with the new code; a change made
with `ctx.patched` passes, a change that would strand paused runs does not.

The replay is the worker's own (`Context` over the journal), on a host that refuses to
do anything: reaching a call the journal does not hold means everything recorded matched.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signoff import clock, context, errors, models, runner
from signoff.journal import JournalEntry

if TYPE_CHECKING:
    from signoff.engine import Engine
    from signoff.store.base import WaitOutcome

UNFINISHED = (
    models.RunStatus.WAITING,
    models.RunStatus.RUNNING,
    models.RunStatus.PENDING,
    models.RunStatus.BLOCKED,  # would the new code resume it?
)


class PastJournal(BaseException):
    """Replay reached a call the record does not hold: everything recorded matched."""


class ReplayHost:
    """Stands in for an execution during a replay: it never writes and never runs a step."""

    def __init__(self, run_id: str, workflow: str) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.default_retry = models.RetryPolicy()
        self.clock: clock.Clock = clock.SystemClock()
        self.defer_steps = False

    def beyond_journal(self) -> None:
        raise PastJournal

    def step_scope(self, seq: int, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        raise PastJournal  # never reached: a step past the record raised at beyond_journal

    async def write_step(self, *args: Any, **kwargs: Any) -> None:
        raise PastJournal

    async def attempt_failed(self, *args: Any, **kwargs: Any) -> None:
        raise PastJournal

    async def open_wait(self, **kwargs: Any) -> WaitOutcome:
        raise PastJournal

    async def park(self, seqs: list[int], extra: list[JournalEntry]) -> dict[int, str | None]:
        raise PastJournal  # the record ends waiting here

    async def close_waits(self, seqs: list[int], extra: list[JournalEntry]) -> None:
        raise PastJournal


async def replay(
    definition: runner.WorkflowDef,
    run_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    entries: list[JournalEntry],
) -> None:
    """Replay a run's journal with the workflow's current code; raise
    `NonDeterminismError` where the code no longer makes the recorded calls."""
    ctx = context.Context(ReplayHost(run_id, definition.name), entries)
    token = context._current.set(ctx)
    ctx.enter()
    try:
        decoded, named = definition.decode(args, kwargs)
        try:
            try:
                await definition.fn(ctx, *decoded, **named)
            finally:
                await ctx.stop()
        except (PastJournal, context.Suspended):
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


@dataclass(frozen=True, kw_only=True, slots=True)
class Broken:
    """A run the checked code would not replay."""

    run_id: str
    workflow: str
    status: str
    message: str
    seq: int | None = None
    expected: str | None = None
    found: str | None = None


@dataclass(kw_only=True, slots=True)
class CheckReport:
    """What `engine.check()` found: `checked` runs, the `broken` ones, in `seconds`."""

    checked: int = 0
    broken: list[Broken] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.broken


async def check(engine: Engine, *, page_size: int = 1000) -> CheckReport:
    """Replay every unfinished run of `engine`'s database against its registered code."""
    report = CheckReport()
    began = time.perf_counter()
    registry = engine._registry
    for status in UNFINISHED:
        cursor: str | None = None
        while True:
            page = await engine.list_runs(status=status, limit=page_size, cursor=cursor)
            journals = await engine.store.get_journals([run.id for run in page])
            for run in page:
                entries = journals[run.id]
                found = registry.get(run.workflow)
                wf = None if found is None else found.for_version(run.version)
                broken = await check_run(wf, run, entries)
                report.checked += 1
                if broken is not None:
                    report.broken.append(broken)
            cursor = page.next_cursor
            if cursor is None:
                break
    report.seconds = time.perf_counter() - began
    return report


async def check_run(
    definition: runner.WorkflowDef | None, run: models.Run, entries: list[JournalEntry]
) -> Broken | None:
    """Why `definition` would not replay `run` (its journal `entries`); None: it would."""

    def broken(message: str, exc: errors.NonDeterminismError | None = None) -> Broken:
        return Broken(
            run_id=run.id,
            workflow=run.workflow,
            status=run.status.value,
            message=message,
            seq=None if exc is None else exc.seq,
            expected=None if exc is None else exc.expected,
            found=None if exc is None else exc.found,
        )

    if definition is None:
        return broken(f"workflow {run.workflow!r} is not registered in this code")
    try:
        await replay(definition, run.id, run.args, run.kwargs, entries)
    except errors.NonDeterminismError as exc:
        return broken(str(exc), exc)
    except Exception as exc:  # the code fails where the record did not
        return broken(f"{type(exc).__name__}: {exc}")
    return None
