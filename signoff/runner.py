"""Execute one claimed run: replay its workflow function until it parks, fails or ends.

Every write goes through the run's fencing token; a write refused because the token is
stale (lease lost, run cancelled) abandons the execution without touching anything else.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from signoff import clock, errors, hooks, models, serialization, telemetry
from signoff.context import Abandoned, Context, StoreFailure, Suspended, _current, error_info
from signoff.journal import EntryKind, EntryStatus, JournalEntry
from signoff.store.base import Claim, LeaseLost, Store, WaitOutcome, WaitRequest

log = logging.getLogger(__name__)

WorkflowFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class WorkflowDef:
    """A registered workflow: its name, function, and parameter types for decoding input."""

    name: str
    fn: WorkflowFn
    params: tuple[tuple[str, Any], ...] = field(default=())
    kinds: tuple[Any, ...] = field(default=())  # each parameter's inspect kind
    timeout: float | None = None  # seconds a run may take in all (its deadline)
    version: str | None = None  # declared with `@engine.workflow(version=)`
    # every version registered under this name, this one (the newest) included
    versions: dict[str | None, WorkflowDef] = field(default_factory=dict, compare=False)
    # no parameter's hint makes `serialization.revive` change a value: input as it is
    plain_input: bool = field(default=False, compare=False)

    def for_version(self, version: str | None) -> WorkflowDef:
        """The registered code of `version` (the version a run started on); this one,
        the newest, when that version is not kept (the run replays on it)."""
        return self.versions.get(version, self)

    @classmethod
    def of(
        cls, name: str, fn: WorkflowFn, *, timeout: float | None = None, version: str | None = None
    ) -> WorkflowDef:
        if not inspect.iscoroutinefunction(fn):
            raise errors.InvalidArgument(
                f"workflow {name!r} must be an async function: async def {name}(ctx, ...)"
            )
        try:
            hints = typing.get_type_hints(fn)
        except Exception:
            hints = {}
        params = list(inspect.signature(fn).parameters.values())[1:]
        typed = tuple((p.name, hints.get(p.name)) for p in params)
        return cls(
            name,
            fn,
            typed,
            tuple(p.kind for p in params),
            timeout,
            version,
            plain_input=_plain(typed),
        )

    def decode(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Revive JSON input by the parameters' hints: `*items` and `**extra` by theirs."""
        if self.plain_input:  # no hint revives anything: the JSON data as it is
            return list(args), dict(kwargs)
        types = dict(self.params)
        positional = [
            (n, k)
            for (n, _), k in zip(self.params, self.kinds, strict=False)
            if k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        star = next(
            (
                n
                for (n, _), k in zip(self.params, self.kinds, strict=False)
                if k is inspect.Parameter.VAR_POSITIONAL
            ),
            None,
        )
        extra = next(
            (
                n
                for (n, _), k in zip(self.params, self.kinds, strict=False)
                if k is inspect.Parameter.VAR_KEYWORD
            ),
            None,
        )
        decoded = []
        for i, a in enumerate(args):
            name = positional[i][0] if i < len(positional) else star
            decoded.append(serialization.revive(a, types.get(name) if name else None))
        named = {
            k: serialization.revive(v, types.get(k) if k in types else types.get(extra or ""))
            for k, v in kwargs.items()
        }
        return decoded, named


def _plain(params: tuple[tuple[str, Any], ...]) -> bool:
    """Whether no parameter's hint makes `serialization.revive` change a value."""
    try:
        return not any(serialization.needs_revival(tp) for _, tp in params if tp is not None)
    except TypeError:  # an unhashable hint: `revive` decides, value by value
        return False


class _StepScope:
    """`Execution.step_scope` as a plain class (it runs around every step executed)."""

    __slots__ = ("_ex", "_inner", "_name", "_seq")

    def __init__(self, ex: Execution, seq: int, name: str) -> None:
        self._ex, self._seq, self._name = ex, seq, name

    async def __aenter__(self) -> None:
        ex = self._ex
        self._inner = ex.telemetry.step(ex.run_id, ex.workflow, self._name, self._seq)
        self._inner.__enter__()
        ex._step_started[self._seq] = time.perf_counter()
        if ex.hooks.any_for("before_step"):
            try:
                info = hooks.StepInfo(ex.run_id, ex.workflow, self._name, self._seq)
                await ex.hooks.fire_before_step(info)
            except BaseException as exc:  # cut off (cancelled) while the hooks ran
                self._ex._step_started.pop(self._seq, None)
                self._inner.__exit__(type(exc), exc, exc.__traceback__)
                raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self._ex._step_started.pop(self._seq, None)
        self._inner.__exit__(kind, exc, tb)


@dataclass(slots=True)
class Settings:
    owner: str
    lease: float
    default_retry: models.RetryPolicy
    directory: Any = None  # resolves approvers' roles (`signoff.policy.DirectoryLike`)
    approval_timeout: float | None = None  # seconds: approvals that name no timeout
    # gated key prefix -> check of an edit (filled as gated calls run; `signoff.gated`)
    edit_checks: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    telemetry: telemetry.Telemetry = field(default_factory=telemetry.Telemetry)
    hooks: hooks.Hooks = field(default_factory=hooks.Hooks)


class Execution:
    """One attempt at running a claimed run; the context writes through it."""

    def __init__(self, claim: Claim, store: Store, clock_: clock.Clock, settings: Settings) -> None:
        self.run_id = claim.run.id
        self.workflow = claim.run.workflow
        self.fence = claim.fence
        self.store = store
        self.clock = clock_
        self.default_retry = settings.default_retry
        self.directory = settings.directory
        self.approval_timeout = settings.approval_timeout
        deadline = claim.run.deadline
        self.deadline: float | None = None if deadline is None else deadline.timestamp()
        self.edit_checks = settings.edit_checks
        self.telemetry = settings.telemetry
        self.hooks = settings.hooks
        # after_step hooks see a step's record kept: then each is written at once
        self.defer_steps = not self.hooks.any_for("after_step")
        self._step_started: dict[int, float] = {}
        self.owner = settings.owner

    def beyond_journal(self) -> None:
        pass  # first execution of this call: do it and record it

    def step_scope(self, seq: int, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Around a step executed: its span and log context, and `before_step` hooks."""
        return _StepScope(self, seq, name)

    async def _guard(self, write: Awaitable[Any]) -> Any:
        try:
            return await write
        except LeaseLost:
            raise Abandoned from None
        except errors.StoreError as exc:  # travels past user code that catches Exception
            raise StoreFailure(str(exc)) from exc

    async def write_step(
        self, entry: JournalEntry, attempts: int, extra: list[JournalEntry]
    ) -> None:
        await self._guard(
            self.store.record_step(
                run_id=self.run_id,
                fence=self.fence,
                entry=entry,
                attempts=attempts,
                extra=extra,
                now=self.clock.time(),
            )
        )
        if entry.status is EntryStatus.FAILED:
            self.telemetry.step_failed(self.workflow, entry.name, final=True)
        if self.hooks.any_for("after_step"):
            await self._after_step(entry, attempts)

    async def _after_step(self, entry: JournalEntry, attempts: int) -> None:
        ok = entry.status is EntryStatus.DONE
        started = self._step_started.get(entry.seq)
        done = hooks.StepDone(
            run_id=self.run_id,
            workflow=self.workflow,
            step=entry.name,
            seq=entry.seq,
            ok=ok,
            attempts=attempts,
            duration=0.0 if started is None else time.perf_counter() - started,
            result=serialization.loads(entry.result) if ok else None,
            error=None if ok else serialization.loads(entry.error),
        )
        await self.hooks.fire_after_step(done)

    async def attempt_failed(
        self, seq: int, name: str, attempt: int, info: dict[str, Any], retry_in: float
    ) -> None:
        self.telemetry.step_failed(self.workflow, name, final=False)
        await self._guard(
            self.store.record_attempt_failure(
                run_id=self.run_id,
                fence=self.fence,
                seq=seq,
                name=name,
                attempt=attempt,
                error=info,
                retry_in=retry_in,
                now=self.clock.time(),
            )
        )

    async def open_wait(
        self,
        *,
        kind: EntryKind,
        seq: int,
        path: str,
        name: str,
        deadline: float | None,
        summary: str,
        proposed_json: str | None,
        extra: list[JournalEntry],
        policy_json: str | None = None,
        park: bool = True,
    ) -> WaitOutcome:
        wait = WaitRequest(
            kind=kind,
            seq=seq,
            path=path,
            name=name,
            deadline=deadline,
            summary=summary,
            proposed_json=proposed_json,
            policy_json=policy_json,
        )
        with self.telemetry.wait(self.run_id, self.workflow, kind.value, name) as span:
            outcome: WaitOutcome = await self._guard(
                self.store.open_wait(
                    run_id=self.run_id,
                    fence=self.fence,
                    wait=wait,
                    extra=extra,
                    now=self.clock.time(),
                    park=park,
                )
            )
            if span is not None:
                span.set_attribute("signoff.wait.parked", park and not outcome.resolved)
        if outcome.problem is None and self.hooks.any_for("on_wait"):
            at = None if deadline is None else models.from_timestamp(deadline)
            info = hooks.WaitInfo(
                self.run_id, self.workflow, kind.value, name, seq, bool(outcome.resolved), at
            )
            await self.hooks.fire_wait(info)
        return outcome

    async def park(self, seqs: list[int], extra: list[JournalEntry]) -> dict[int, str | None]:
        with self.telemetry.park(self.run_id, self.workflow, len(seqs)) as span:
            answers: dict[int, str | None] = await self._guard(
                self.store.park(
                    run_id=self.run_id,
                    fence=self.fence,
                    seqs=seqs,
                    extra=extra,
                    now=self.clock.time(),
                )
            )
            if span is not None:
                span.set_attribute("signoff.wait.parked", not answers)
        return answers

    async def close_waits(self, seqs: list[int], extra: list[JournalEntry]) -> None:
        await self._guard(
            self.store.close_waits(
                run_id=self.run_id, fence=self.fence, seqs=seqs, extra=extra, now=self.clock.time()
            )
        )

    async def block(self, mismatch: errors.NonDeterminismError) -> None:
        """Park the run as blocked. What this execution would have journaled is dropped:
        the code that made it no longer replays the record."""
        log.warning(
            "run %s blocked: %s",
            self.run_id,
            mismatch,
            extra={"action": "run_blocked", "run_id": self.run_id},
        )
        info = error_info(mismatch)
        info.update(seq=mismatch.seq, expected=mismatch.expected, found=mismatch.found)
        info["worker"] = self.owner
        await self._guard(
            self.store.block_run(
                run_id=self.run_id, fence=self.fence, error=info, now=self.clock.time()
            )
        )

    async def finish(
        self,
        status: str,
        result_json: str | None,
        error: dict[str, Any] | None,
        extra: list[JournalEntry],
    ) -> None:
        await self._guard(
            self.store.finish_run(
                run_id=self.run_id,
                fence=self.fence,
                status=status,
                result_json=result_json,
                error=error,
                extra=extra,
                now=self.clock.time(),
            )
        )
        if self.hooks.any_for("on_complete" if status == "completed" else "on_fail"):
            result = None if result_json is None else serialization.loads(result_json)
            ended = hooks.RunDone(self.run_id, self.workflow, status, result, error)
            await self.hooks.fire_end(ended)


async def execute(
    claim: Claim, wf: WorkflowDef, store: Store, clock_: clock.Clock, settings: Settings
) -> str:
    """Run the workflow for `claim` until it parks or ends. Returns what happened:
    "waiting", "completed", "failed", "blocked" or "abandoned".

    Only `NonDeterminismError` (replay no longer matches the journal) blocks a run: it
    is the code's doing, not the run's, so the run keeps its journal and open waits and
    waits for code that replays it rather than fail."""
    execution = Execution(claim, store, clock_, settings)
    ctx = Context(execution, claim.journal)
    token = _current.set(ctx)
    ctx.enter()
    try:
        try:
            args, kwargs = wf.decode(claim.run.args, claim.run.kwargs)
            try:
                result = await wf.fn(ctx, *args, **kwargs)
            finally:
                await ctx.stop()
            if ctx.parked:  # the workflow went on after its tasks parked (return_exceptions)
                raise Suspended
            ctx.check_ended()
            text = serialization.dumps(result, where=f"the result of workflow {wf.name!r}")
        except (Suspended, Abandoned, StoreFailure):
            raise
        except Exception as exc:
            if ctx.parked:  # an error from a task the parking stopped, not the run's
                raise Suspended from None
            failure = ctx.fatal or exc
            if isinstance(failure, errors.NonDeterminismError):
                await ctx._write_deferred()
                await execution.block(failure)
                return "blocked"
            log.info(
                "run %s failed: %s",
                ctx.run_id,
                type(failure).__name__,
                extra={"action": "run_failed", "run_id": ctx.run_id},
            )
            await _withdraw_left(execution, ctx, claim.journal)
            await execution.finish("failed", None, error_info(failure), ctx._take_pending())
            return "failed"
        await _withdraw_left(execution, ctx, claim.journal)
        await execution.finish("completed", text, None, ctx._take_pending())
        return "completed"
    except Suspended:
        return "waiting"
    except Abandoned:
        log.warning(
            "run %s abandoned: its lease was lost or it was cancelled",
            claim.run.id,
            extra={"action": "run_abandoned", "run_id": claim.run.id},
        )
        return "abandoned"
    except StoreFailure as failure:  # not the run's fault: the worker hands it back
        assert isinstance(failure.__cause__, errors.StoreError)
        raise failure.__cause__ from None
    finally:
        ctx.leave()
        _current.reset(token)


async def _withdraw_left(execution: Execution, ctx: Context, journal: list[JournalEntry]) -> None:
    """The run ends with waits still open (tasks the workflow left behind, or a run
    that timed out while it waited): withdraw them so that no approval of a finished
    run stays in an inbox."""
    left = ctx.unanswered | {e.seq for e in journal if e.status is EntryStatus.OPEN}
    if left:
        await execution.close_waits(sorted(left), ctx._take_pending())


async def execute_observed(
    claim: Claim, wf: WorkflowDef, store: Store, clock_: clock.Clock, settings: Settings
) -> str:
    """`execute` inside the run's span and log context, its outcome counted."""
    with settings.telemetry.run(claim.run.id, claim.run.workflow) as scope:
        scope.outcome = await execute(claim, wf, store, clock_, settings)
        return scope.outcome
