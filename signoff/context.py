"""`Context`: what a workflow function uses to take steps and wait for people.

Every call takes the next position in the run's journal. On replay a recorded step
returns its recorded result and a wait returns its recorded answer; a wait whose answer
has not arrived parks the run (the coroutine is dropped; only database rows remain).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import inspect
import random as _random
import traceback
import types
import typing
import uuid as _uuid
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar, Token
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from signoff import clock, durations, errors, models, policy, serialization
from signoff.journal import EntryKind, EntryStatus, JournalEntry, ReplayCursor, mismatch

if TYPE_CHECKING:
    from signoff.store.sql_waits import WaitOutcome

T = TypeVar("T")

_current: ContextVar[Context] = ContextVar("signoff_context")
_current_step: ContextVar[str] = ContextVar("signoff_step")
_branch: ContextVar[_Branch] = ContextVar("signoff_branch")

# How many turns of the event loop without any call of the run before its blocked waits
# are taken as everything it waits for (a task resuming after a gather takes three).
_QUIET_TURNS = 6


@dataclasses.dataclass(eq=False, slots=True)
class _Branch:
    """One task of a run's workflow code: the workflow function's own task ("") or a task
    it started, named by its parent and its rank among the parent's tasks ("0/", "0/1/")."""

    owner: Context
    task: asyncio.Task[Any] | None
    prefix: str
    calls: int = 0
    children: int = 0


@dataclasses.dataclass(slots=True)
class _Blocked:
    future: asyncio.Future[str | None]
    kind: EntryKind
    name: str
    path: str


_MAX_KEY = 200


class Host(Protocol):
    """What a Context writes through: the execution of one run (`runner.Execution`)."""

    run_id: str
    workflow: str
    default_retry: models.RetryPolicy
    clock: clock.Clock
    defer_steps: bool  # a step's record may wait for the run's next write

    def beyond_journal(self) -> None:
        """Called when the workflow makes a call the journal has no record of."""

    def step_scope(self, seq: int, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Around a step executed (not one returned from the journal): its span, log
        context and hooks."""

    async def write_step(
        self, entry: JournalEntry, attempts: int, extra: list[JournalEntry]
    ) -> None: ...

    async def attempt_failed(
        self, seq: int, name: str, attempt: int, info: dict[str, Any], retry_in: float
    ) -> None: ...

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
    ) -> WaitOutcome: ...

    async def park(self, seqs: list[int], extra: list[JournalEntry]) -> dict[int, str | None]:
        """Park the run on the open waits `seqs`; or, if some were answered meanwhile,
        return those answers and leave the run running."""

    async def close_waits(self, seqs: list[int], extra: list[JournalEntry]) -> None:
        """Withdraw the open waits `seqs` (their approvals leave the inboxes)."""


class Suspended(BaseException):
    """The run parked on a wait. A BaseException so `except Exception` cannot swallow it."""


class Abandoned(BaseException):
    """This execution lost the run (lease expired, run cancelled); stop without writing."""


class StoreFailure(BaseException):
    """The store failed under this execution: hand the run back rather than fail it."""


def current() -> Context:
    """The context of the workflow run executing in this task."""
    try:
        return _current.get()
    except LookupError:
        raise errors.OutsideWorkflowError(
            "no workflow run is executing here; this helper only works inside a workflow "
            "function or a step it calls"
        ) from None


def idempotency_key() -> str:
    """A key stable across retries of the current step: pass it to the external system
    so that a step run twice (after a crash) has its effect once."""
    return current().idempotency_key()


def error_info(exc: BaseException) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": _storable(type(exc).__name__),
        "message": _storable(str(exc)),
        "traceback": _storable("".join(traceback.format_exception(exc))),
    }
    if isinstance(exc, errors.SignoffError):
        info["code"] = exc.code
    return info


def _storable(text: str) -> str:
    """Error text that every store keeps: NUL and lone surrogates written as escapes."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


async def _awaited(aw: Awaitable[T]) -> T:
    return await aw


def _discard(aw: Awaitable[Any]) -> None:
    """Drop an awaitable that will not run (no 'never awaited' warning)."""
    if inspect.iscoroutine(aw):
        aw.close()
    elif isinstance(aw, asyncio.Future):
        aw.cancel()


def _parked_by(task: asyncio.Task[Any]) -> bool:
    """Whether the task ended because the run parked (or its execution stopped)."""
    exc = task.exception()
    return isinstance(exc, Suspended | Abandoned | StoreFailure)


_COMPACT = serialization.compact_encoder()
_SORTED = serialization.compact_encoder(sort_keys=True)


def _canonical(value: Any, *, sort_keys: bool = False) -> str:
    """JSON text that is equal exactly when two JSON values are (`true` is not `1`);
    without `sort_keys`, the text `serialization.dumps` wrote for the same value."""
    return _SORTED(value) if sort_keys else _COMPACT(value)


def _callable_name(fn: Callable[..., Any]) -> str:
    inner = getattr(fn, "func", fn)  # functools.partial
    return str(getattr(inner, "__qualname__", None) or getattr(inner, "__name__", repr(inner)))


def _return_type(fn: Callable[..., Any]) -> Any:
    target = getattr(fn, "func", fn)
    try:
        return _hinted_return(target)
    except TypeError:  # unhashable callable
        return _hinted_return.__wrapped__(target)


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "func", None))


@functools.lru_cache(maxsize=4096)
def _function_facts(fn: types.FunctionType) -> tuple[str, bool, Any]:
    """A plain function's step name, whether it is async, and its return annotation,
    worked out once per function (a step of it asks for all three each time it runs)."""
    return _callable_name(fn), _is_async(fn), _return_type(fn)


def _facts(fn: Callable[..., Any]) -> tuple[str, bool, Any]:
    """`_function_facts` of any callable: memoized for plain functions, the usual case."""
    if type(fn) is types.FunctionType:
        return _function_facts(fn)
    return _callable_name(fn), _is_async(fn), _return_type(fn)


@functools.lru_cache(maxsize=4096)
def _hinted_return(fn: Callable[..., Any]) -> Any:
    try:
        return typing.get_type_hints(fn).get("return")
    except Exception:
        return None


@functools.lru_cache(maxsize=256)
def _policy_text(rules: tuple[tuple[str, Any], ...]) -> str:
    """The stored policy of a request that names nobody (no approvers, no escalation:
    no directory is asked), the same text for every request made with the same rules."""
    built = policy.build(**dict(rules), stage=None, directory=None)
    return serialization.dumps(built, where="the policy of an approval")


class _Busy:
    """`Context._busy()`: a plain class, not a generator (it is around every step)."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def __enter__(self) -> None:
        self._ctx._inflight += 1

    def __exit__(self, *exc: object) -> None:
        ctx = self._ctx
        ctx._inflight -= 1
        ctx._activity += 1
        if ctx._eased is not None:
            ctx._eased.set()


class Context:
    """Handed to every workflow function as its first argument."""

    def __init__(self, execution: Host, journal: list[JournalEntry]) -> None:
        self._exec = execution
        self.run_id: str = execution.run_id
        self.workflow: str = execution.workflow
        self._cursor = ReplayCursor(self.run_id, journal)
        # saved with the run's next write: ctx.now() readings, and steps' records
        self._pending: list[JournalEntry] = []
        self._rng: _random.Random | None = None  # made on the first ctx.random() call
        self._uuids = 0
        self._gated_calls: dict[str, int] = {}  # gated key prefix -> calls needing approval
        self.fatal: BaseException | None = None
        # Concurrency inside the run (asyncio.gather, any_of): the tasks making calls,
        # the calls doing I/O now, and the waits that have no answer yet.
        self._root: _Branch | None = None
        self._entered: Token[_Branch] | None = None
        self._children: list[_Branch] = []
        self._inflight = 0
        self._eased: asyncio.Event | None = None  # set whenever a call doing I/O ends
        self._activity = 0
        self._blocked: dict[int, _Blocked] = {}
        self._withdrawing: set[int] = set()
        self._settler: asyncio.Task[None] | None = None
        self._stopping = False
        self.parked = False
        self.unanswered: set[int] = set()  # waits opened and not answered in this execution
        self._replayed: tuple[str | None, Any] | None = None  # see `_check_proposal`

    def enter(self) -> None:
        """Make the calling task the workflow function's own (call where it will run)."""
        self._root = _Branch(self, asyncio.current_task(), "")
        self._entered = _branch.set(self._root)

    def leave(self) -> None:
        """The execution is over (call in the task that entered): let go of the tasks it
        knew. The task, its context and this context refer to each other through the
        branches; untied here, an execution's objects are freed as soon as it ends instead
        of waiting, some forty per execution, for the cyclic garbage collector (whose full
        collections cost a fifth of the CPU of a busy worker before)."""
        if self._entered is not None:
            _branch.reset(self._entered)
            self._entered = None
        for branch in (self._root, *self._children):
            if branch is not None:
                branch.task = None
        self._root = None
        self._children = []
        self._settler = None

    # steps ---------------------------------------------------------------------------

    @typing.overload
    async def step(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        name: str | None = None,
        retry: models.RetryPolicy | None = None,
        **kwargs: Any,
    ) -> T: ...

    @typing.overload
    async def step(
        self,
        fn: Callable[..., T],
        *args: Any,
        name: str | None = None,
        retry: models.RetryPolicy | None = None,
        **kwargs: Any,
    ) -> T: ...

    async def step(
        self,
        fn: Callable[..., Awaitable[T]] | Callable[..., T],
        *args: Any,
        name: str | None = None,
        retry: models.RetryPolicy | None = None,
        **kwargs: Any,
    ) -> T:
        """Run `fn(*args, **kwargs)` once and journal its result; on replay return the
        recorded result. `fn` may be sync (run in a thread) or async. A failure is retried
        per `retry` (default: the engine's policy) and then raised as `StepError`."""
        fn_name, is_async, rtype = _facts(fn)
        step_name = name or fn_name
        if name is not None:
            serialization.to_jsonable(name, "step name")
        seq, entry, path = self._advance(EntryKind.STEP, step_name)
        if entry is not None:
            if entry.status is EntryStatus.FAILED:
                raise self._step_error(step_name, serialization.loads(entry.error) or {})
            return serialization.revive(serialization.loads(entry.result), rtype)  # type: ignore[no-any-return]
        await self._write_deferred()
        with self._busy():
            async with self._exec.step_scope(seq, step_name):
                text = await self._run_step(seq, path, step_name, fn, args, kwargs, retry, is_async)
        return serialization.revive(serialization.loads(text), rtype)  # type: ignore[no-any-return]

    async def _run_step(
        self,
        seq: int,
        path: str,
        step_name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retry: models.RetryPolicy | None,
        is_async: bool,
    ) -> str:
        policy = retry or self._exec.default_retry
        attempt = 0
        while True:
            attempt += 1
            try:
                value = await self._call(path, fn, args, kwargs, is_async)
                break
            except Exception as exc:
                info = error_info(exc)
                if attempt < policy.attempts:
                    delay = policy.delay(attempt)
                    await self._exec.attempt_failed(seq, step_name, attempt, info, delay)
                    await asyncio.sleep(delay)
                    continue
                failed = JournalEntry(
                    seq=seq,
                    kind=EntryKind.STEP,
                    name=step_name,
                    status=EntryStatus.FAILED,
                    error=serialization.dumps(info, "step error"),
                    path=path,
                )
                await self._write_step(failed, attempt)
                raise self._step_error(step_name, info, attempt) from exc
        text = serialization.dumps(value, where=f"the result of step {step_name!r}")
        done = JournalEntry(
            seq=seq,
            kind=EntryKind.STEP,
            name=step_name,
            status=EntryStatus.DONE,
            result=text,
            path=path,
        )
        await self._write_step(done, attempt)
        return text

    async def _call(
        self,
        path: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        is_async: bool,
    ) -> Any:
        token = _current_step.set(path)
        try:
            if is_async:
                return await fn(*args, **kwargs)
            value = await asyncio.to_thread(fn, *args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
            return value
        finally:
            _current_step.reset(token)

    async def _write_step(self, entry: JournalEntry, attempts: int) -> None:
        if self._exec.defer_steps and attempts == 1 and entry.status is EntryStatus.DONE:
            # The record of a step that went well at once travels with the run's next
            # write (its wait, its end, or the start of its next step, whichever comes
            # first): a transaction fewer. No later step's effect happens before it is
            # kept; a crash before then runs the step again, as a crash right after its
            # effect always could (hence `idempotency_key()`).
            self._pending.append(entry)
        else:
            await self._exec.write_step(entry, attempts, self._take_pending())
        self._cursor.remember(entry)

    async def _write_deferred(self) -> None:
        """Write the deferred record of a step before another step runs."""
        steps = [e for e in self._pending if e.kind is EntryKind.STEP]
        if steps:
            rest = [e for e in self._take_pending() if e is not steps[-1]]
            await self._exec.write_step(steps[-1], 1, rest)

    def _step_error(
        self, name: str, info: dict[str, Any], attempts: int | None = None
    ) -> errors.StepError:
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
        return errors.StepError(
            f"step {name!r} failed{tries}: {info.get('type')}: {info.get('message')}",
            run_id=self.run_id,
            step=name,
            error_type=info.get("type", ""),
            error_message=info.get("message", ""),
            traceback=info.get("traceback", ""),
        )

    # waits ---------------------------------------------------------------------------

    async def approval(
        self,
        key: str,
        *,
        summary: str = "",
        proposed: Any = None,
        timeout: durations.Duration | None = None,
        approvers: Sequence[str] | None = None,
        quorum: int = 1,
        reject_quorum: int = 1,
        allow_self_approval: bool = False,
        on_timeout: str = "expire",
        escalate_after: durations.Duration | None = None,
        escalate_to: Sequence[str] | None = None,
        remind_every: durations.Duration | None = None,
        schema: Any = None,
        edits: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> models.Decision:
        """Ask people to decide; pause until they do. `key` names the request, unique
        within the run. `timeout` defaults to the engine's `approval_timeout` (if any);
        `timeout="never"` asks with no deadline whatever that default. The policy (who
        may decide, quorum, timeouts, escalation, schema of edits) is described in the
        guide's "Approval policies" section. `edits=False` refuses edits (`EditNotAllowed`)
        where what follows could not take an edited value. `metadata` (JSON) is shown
        with the request on every surface (the tool and model behind an agent's call,
        a ticket link): context for the person, not part of what they approve."""
        return await self._approval(
            key,
            summary=summary,
            proposed=proposed,
            timeout=timeout,
            rules=dict(
                approvers=approvers,
                quorum=quorum,
                reject_quorum=reject_quorum,
                allow_self_approval=allow_self_approval,
                on_timeout=on_timeout,
                escalate_after=escalate_after,
                escalate_to=escalate_to,
                remind_every=remind_every,
                schema=schema,
                edits=edits,
                metadata=metadata,
            ),
        )

    async def ask(
        self,
        question: str,
        *,
        key: str | None = None,
        schema: Any = None,
        to: str | Sequence[str] | None = None,
        details: Any = None,
        timeout: durations.Duration | None = None,
    ) -> Any:
        """Ask a person a question; pause until they answer, and return the answer.

        Without `schema` the answer is text; with one (a pydantic model class, whose
        instance is returned, or a JSON Schema dict) it is validated on every surface
        before it is recorded. `to` names who may answer (people and `role:NAME`; anyone
        when None); `details` (JSON) is shown beside the question; `key` (default: one
        derived from the question) names it within the run. A person answers with
        `engine.answer(run_id, key, answer, by=...)`, `signoff answer`, the HTTP action
        "answer" or the inbox; declining to answer (a rejection) raises
        `QuestionDeclined`, and `timeout` running out raises `WaitTimeout`.
        """
        if not isinstance(question, str) or not question.strip():
            raise errors.InvalidArgument("a question must be a non-empty string")
        if key is None:
            key = "ask/" + hashlib.sha256(question.encode("utf-8")).hexdigest()[:12]
        model = schema if isinstance(schema, type) else None
        shape = {"type": "string", "minLength": 1} if schema is None else schema
        approvers = [to] if isinstance(to, str) else to
        decision = await self._approval(
            key,
            summary=question,
            proposed=details,
            timeout=timeout,
            rules=dict(
                approvers=approvers,
                quorum=1,
                reject_quorum=1,
                allow_self_approval=True,  # asking is not approving: the requester may answer
                on_timeout="expire",
                escalate_after=None,
                escalate_to=None,
                remind_every=None,
                schema=shape,
                question=True,
            ),
        )
        if decision.status is models.DecisionStatus.EDITED:
            if model is not None:
                return model.model_validate(decision.value)  # type: ignore[attr-defined]
            return decision.value
        if decision.status is models.DecisionStatus.REJECTED:
            raise errors.QuestionDeclined(
                f"{decision.by or 'the person asked'} declined to answer {question!r:.80}"
                + (f": {decision.reason}" if decision.reason else ""),
                run_id=self.run_id,
                key=key,
                by=decision.by,
                reason=decision.reason,
            )
        raise errors.WaitTimeout(
            f"nobody answered {question!r:.80} within {timeout}", run_id=self.run_id, key=key
        )

    async def approval_chain(
        self,
        key: str,
        stages: Sequence[policy.Stage],
        *,
        summary: str = "",
        proposed: Any = None,
    ) -> models.Decision:
        """Ask each stage in turn (e.g. manager, then finance, then CEO); stop at the
        first that does not approve. Each stage is an approval under `key/stage name`;
        a stage's `when(value)` says whether it applies. Returns the last decision."""
        from signoff import chain  # the chain is plain workflow code over `_approval`

        return await chain.run(self, key, stages, summary=summary, proposed=proposed)

    async def _approval(
        self,
        key: str,
        *,
        summary: str,
        proposed: Any,
        timeout: durations.Duration | None,
        rules: dict[str, Any],
        stage: dict[str, Any] | None = None,
    ) -> models.Decision:
        self._check_key(key, "approval key")
        if timeout is None:  # the engine's default deadline, if it has one
            seconds: float | None = getattr(self._exec, "approval_timeout", None)
        elif timeout == "never":  # no deadline, whatever the engine's default
            seconds = None
        else:
            seconds = durations.to_seconds(timeout, "timeout")
        proposed_json = serialization.dumps(proposed, where=f"the proposed value of {key!r}")
        if not isinstance(summary, str):
            raise errors.InvalidArgument("summary must be a string")
        serialization.to_jsonable(summary, "summary")
        for name in ("escalate_after", "remind_every"):
            if rules[name] is not None:
                rules[name] = durations.to_seconds(rules[name], name)
        directory = getattr(self._exec, "directory", None)

        def build() -> str:  # only when the request is first made, never on replay
            if stage is None and rules["approvers"] is None and rules["escalate_to"] is None:
                with contextlib.suppress(Exception):  # unhashable, or refused: as below
                    return _policy_text(tuple(rules.items()))
            built = policy.build(**rules, stage=stage, directory=directory)
            return serialization.dumps(built, where=f"the policy of approval {key!r}")

        result = await self._wait(EntryKind.APPROVAL, key, seconds, summary, proposed_json, build)
        replayed, self._replayed = self._replayed, None
        # a replayed decision was parsed once already, to check its proposal
        data = replayed[1] if replayed and replayed[0] is result else serialization.loads(result)
        return models.Decision.from_json(data)

    async def wait_for_signal(
        self,
        name: str,
        *,
        timeout: durations.Duration | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        """Pause until a signal `name` is sent to this run and return its data. A signal
        sent earlier was kept and is returned at once. Raises `WaitTimeout` after `timeout`.
        `metadata` (JSON) tells whoever sends the signal what is expected; it is recorded
        with the wait in the run's history (`waiting_for_signal`)."""
        self._check_key(name, "signal name")
        seconds = None if timeout is None else durations.to_seconds(timeout, "timeout")
        if metadata is not None and not isinstance(metadata, dict):
            raise errors.InvalidArgument(f"metadata must be a dict, not {metadata!r:.60}")
        shown = None if metadata is None else serialization.dumps(metadata, "signal metadata")
        text = await self._wait(EntryKind.SIGNAL, name, seconds, "", shown)
        result = serialization.loads(text)
        if result.get("timed_out"):
            raise errors.WaitTimeout(
                f"no signal {name!r} arrived within {timeout}", run_id=self.run_id, key=name
            )
        return result.get("payload")

    async def wait_for_event(
        self,
        key: str,
        *,
        timeout: durations.Duration | None = None,
        where: dict[str, Any] | None = None,
    ) -> Any:
        """Pause until an event is published on `key` (`engine.notify`) and return its
        data. `where` ({field: value}) keeps only events whose data has those top-level
        fields with those values. An event published earlier and still within the
        engine's `event_retention` is returned at once (the latest matching one this run
        has not seen). Raises `WaitTimeout` after `timeout`."""
        self._check_key(key, "event key")
        if where is not None and (
            not isinstance(where, dict) or not all(isinstance(k, str) for k in where)
        ):
            raise errors.InvalidArgument(
                f"where must be a dict of field name -> expected value, not {where!r:.60}"
            )
        seconds = None if timeout is None else durations.to_seconds(timeout, "timeout")
        filter_json = serialization.dumps(where, where="the where filter") if where else None
        text = await self._wait(EntryKind.EVENT, key, seconds, "", filter_json)
        result = serialization.loads(text)
        if result.get("timed_out"):
            raise errors.WaitTimeout(
                f"no event {key!r} arrived within {timeout}", run_id=self.run_id, key=key
            )
        return result.get("data")

    async def sleep(self, duration: durations.Duration) -> None:
        """Pause the run durably; the timer survives restarts."""
        seconds = durations.to_seconds(duration, "duration")
        await self._wait(EntryKind.SLEEP, "sleep", seconds)

    async def all_of(self, *waits: Awaitable[Any]) -> list[Any]:
        """Wait for all of `waits` (approvals, signals, events, sleeps, or coroutines of
        workflow code) at once: every approver is asked and every timer set together,
        and the run goes on when all are answered. The same as `asyncio.gather`."""
        return list(await asyncio.gather(*waits))

    async def any_of(self, *waits: Awaitable[Any]) -> tuple[int, Any]:
        """Wait for the first of `waits`: all are asked at once; returns `(index, value)`
        of the first answered (its exception, if it raised) and withdraws the others:
        their approvals leave the inboxes and their timers are dropped. The choice is
        journaled, so a replay takes the same one."""
        if not waits:
            raise errors.InvalidArgument("any_of() needs at least one wait")
        seq, entry, path = self._advance(EntryKind.CHOICE, "any_of")
        parent = self._branch_here()
        first = parent.children
        parent.children += len(waits)
        if entry is not None:  # chosen before: replay the winner, skip the others
            winner = int(serialization.loads(entry.result))
            for i, aw in enumerate(waits):
                if i != winner:
                    _discard(aw)
                    self._cursor.skip(f"{parent.prefix}{first + i}/")
            value = await self._spawn(waits[winner], f"{parent.prefix}{first + winner}/")
            return winner, value
        tasks = [self._spawn(aw, f"{parent.prefix}{first + i}/") for i, aw in enumerate(waits)]
        try:
            winner = await self._first(tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        with self._busy():
            await self._quiet(mine=1)  # the others reach their waits or end
            losers = [f"{parent.prefix}{first + i}/" for i in range(len(waits)) if i != winner]
            await self._withdraw(seq, path, winner, tasks, losers)
        return winner, tasks[winner].result()

    def _spawn(self, aw: Awaitable[Any], prefix: str) -> asyncio.Task[Any]:
        """A task of the run with its branch fixed by the code (not by timing)."""
        copied = contextvars.copy_context()
        branch = _Branch(self, None, prefix)
        copied.run(_branch.set, branch)
        task = asyncio.get_running_loop().create_task(_awaited(aw), context=copied)
        branch.task = task
        self._children.append(branch)
        return task

    async def _first(self, tasks: list[asyncio.Task[Any]]) -> int:
        """The index of the first task to end with an answer (value or error)."""
        pending = set(tasks)
        while pending:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for i, task in enumerate(tasks):
                if task.done() and not task.cancelled() and not _parked_by(task):
                    return i
        raise Suspended  # every one of them is parked

    async def _withdraw(
        self,
        seq: int,
        path: str,
        winner: int,
        tasks: list[asyncio.Task[Any]],
        prefixes: list[str],
    ) -> None:
        """Journal the choice and withdraw the losers' open waits, in one transaction;
        then stop the losing tasks."""
        losers = [s for s, b in self._blocked.items() if b.path.startswith(tuple(prefixes))]
        self._note(seq, EntryKind.CHOICE, "any_of", path, str(winner))
        self._withdrawing.update(losers)
        await self._exec.close_waits(sorted(losers), self._take_pending())
        self.unanswered.difference_update(losers)
        for i, task in enumerate(tasks):
            if i != winner and not task.done():
                task.cancel()
        await asyncio.gather(
            *(t for i, t in enumerate(tasks) if i != winner), return_exceptions=True
        )

    async def _wait(
        self,
        kind: EntryKind,
        name: str,
        seconds: float | None,
        summary: str = "",
        proposed_json: str | None = None,
        build_policy: Callable[[], str] | None = None,
    ) -> str:
        seq, entry, path = self._advance(kind, name)
        if entry is not None and entry.status is EntryStatus.DONE:
            if kind is EntryKind.APPROVAL:
                self._check_proposal(seq, name, proposed_json, entry.result)
            return entry.result or "null"
        if entry is not None:  # opened earlier and still open
            self.unanswered.add(seq)
            if self._alone():
                answers = await self._park([seq])
                if seq in answers:  # answered while this execution replayed
                    return self._answered(seq, kind, name, path, answers[seq])
                raise Suspended
            return await self._block(seq, kind, name, path)
        deadline = None if seconds is None else self._exec.clock.time() + seconds
        policy_json = None if build_policy is None else build_policy()
        # Alone, the wait parks the run in the same transaction that opens it; beside
        # other tasks of the run it only opens, and the run parks once all have settled.
        alone = self._alone()
        self.unanswered.add(seq)  # cut off while it opens, it is withdrawn at the end
        try:
            with self._busy():
                outcome = await self._exec.open_wait(
                    kind=kind,
                    seq=seq,
                    path=path,
                    name=name,
                    deadline=deadline,
                    summary=summary,
                    proposed_json=proposed_json,
                    extra=self._take_pending(),
                    park=alone,
                    policy_json=policy_json,
                )
        except asyncio.CancelledError:
            self._cancelled(seq, kind, name)
            raise
        if outcome.problem is not None:
            self.unanswered.discard(seq)
        if outcome.problem == "policy":
            raise errors.InvalidArgument(
                f"approval {name!r}: {outcome.detail}", run_id=self.run_id, key=name
            )
        if outcome.problem == "duplicate_key":
            raise errors.DuplicateApprovalKey(
                f"run {self.run_id} already has an approval {name!r} ({outcome.detail}); "
                "keys are unique within a run: use another key, or request changes to "
                "open a new round under the same key",
                run_id=self.run_id,
                key=name,
            )
        if outcome.resolved:
            return self._answered(seq, kind, name, path, outcome.result)
        if alone:
            self.parked = True
            raise Suspended
        return await self._block(seq, kind, name, path)

    def _answered(self, seq: int, kind: EntryKind, name: str, path: str, result: str | None) -> str:
        text = result or "null"
        self.unanswered.discard(seq)
        self._activity += 1
        self._cursor.remember(
            JournalEntry(
                seq=seq, kind=kind, name=name, status=EntryStatus.DONE, result=text, path=path
            )
        )
        return text

    def _check_proposal(
        self, seq: int, key: str, proposed_json: str | None, recorded: str | None
    ) -> None:
        """A decided approval answers only the proposal it was shown: a replay that now
        proposes something else fails the run rather than act on an unapproved value."""
        decision = serialization.loads(recorded)
        self._replayed = (recorded, decision)  # `_approval` reads the same text next
        if not isinstance(decision, dict) or "original" not in decision:
            return  # recorded before decisions kept the proposal
        if _canonical(decision["original"]) == (proposed_json or "null"):
            return  # the usual case: the same text as was proposed (JSON keeps key order)
        was = _canonical(decision["original"], sort_keys=True)
        now = _canonical(serialization.loads(proposed_json), sort_keys=True)
        if was != now:
            self.fatal = mismatch(
                self.run_id,
                seq,
                f"approval {key!r} of the proposal {was:.200}",
                f"approval {key!r} of another proposal, {now:.200}",
            )
            raise self.fatal

    # changes in workflow code ----------------------------------------------------------

    def patched(self, change_id: str) -> bool:
        """Whether this run takes the change `change_id` in the workflow's code: True for
        runs that reach this point with the changed code (new runs, and paused runs that
        had not got here yet), False for runs that passed here before the change, which
        keep the old path on replay. The choice is journaled, so it never flips.

        ```python
        if ctx.patched("credit-check"):          # added while refunds waited
            await ctx.step(check_credit, order_id)
        decision = await ctx.approval("manager", ...)
        ```
        Once no unfinished run predates the change (`signoff check` tells), replace the
        call with `ctx.deprecate_patch("credit-check")` and drop the old path; later
        remove that too."""
        self._check_key(change_id, "change id")
        branch = self._branch_here()
        recorded = self._cursor.peek(f"{branch.prefix}{branch.calls}")
        if recorded is not None and (
            recorded.kind is not EntryKind.PATCH or recorded.name != change_id
        ):
            return False  # this run was here before the change: the old path
        seq, entry, path = self._advance(EntryKind.PATCH, change_id)
        if entry is None:
            self._note(seq, EntryKind.PATCH, change_id, path, "true")
        return True

    def deprecate_patch(self, change_id: str) -> None:
        """The step after `patched(change_id)` once every run that predates the change
        has finished: runs that recorded the patch replay past it; new runs record nothing."""
        self._check_key(change_id, "change id")
        branch = self._branch_here()
        recorded = self._cursor.peek(f"{branch.prefix}{branch.calls}")
        if recorded is not None and recorded.kind is EntryKind.PATCH and recorded.name == change_id:
            self._advance(EntryKind.PATCH, change_id)

    # deterministic helpers -----------------------------------------------------------

    def now(self) -> datetime:
        """The current time, recorded on first execution and the same on every replay."""
        seq, entry, path = self._advance(EntryKind.NOW, "now")
        if entry is not None:
            ts = float(serialization.loads(entry.result))
        else:
            ts = self._exec.clock.time()
            self._note(seq, EntryKind.NOW, "now", path, repr(ts))
        at = models.from_timestamp(ts)
        assert at is not None
        return at

    def uuid(self) -> _uuid.UUID:
        """A UUID that is the same on every replay of this run."""
        self._uuids += 1
        digest = hashlib.sha256(f"{self.run_id}:uuid:{self._uuids}".encode()).digest()
        return _uuid.UUID(bytes=digest[:16], version=4)

    def random(self) -> float:
        """A float in [0, 1) from a generator seeded by the run id: the same on replay."""
        if self._rng is None:  # seeding hashes the run id: only runs that ask pay for it
            self._rng = _random.Random(self.run_id)
        return self._rng.random()

    def idempotency_key(self) -> str:
        """A key stable across retries of the current step (`run_id:path`; `path` is the
        step's place in the workflow, e.g. `3`, or `0/1` inside a concurrent task)."""
        try:
            path = _current_step.get()
        except LookupError:
            raise errors.OutsideWorkflowError(
                "idempotency_key() is only meaningful inside a step; call it from the "
                "function passed to ctx.step()"
            ) from None
        return f"{self.run_id}:{path}"

    # plumbing ------------------------------------------------------------------------

    def _advance(self, kind: EntryKind, name: str) -> tuple[int, JournalEntry | None, str]:
        if _current.get(None) is not self:
            raise errors.OutsideWorkflowError(
                f"this Context belongs to run {self.run_id}, which is not executing here"
            )
        if self.parked:  # every wait is written down: nothing more runs in this execution
            raise Suspended
        deadline: float | None = getattr(self._exec, "deadline", None)
        if deadline is not None and self._exec.clock.time() >= deadline:
            self.fatal = errors.RunTimedOut(
                f"run {self.run_id} passed its deadline ({models.from_timestamp(deadline)}); "
                "its workflow's timeout= bounds the whole run",
                run_id=self.run_id,
            )
            raise self.fatal
        branch = self._branch_here()
        path = f"{branch.prefix}{branch.calls}"
        branch.calls += 1
        self._activity += 1
        try:
            seq, entry = self._cursor.advance(kind, name, path)
        except errors.NonDeterminismError as exc:
            self.fatal = exc  # the run fails even if the workflow catches the error
            raise
        if entry is None:
            self._exec.beyond_journal()
        return seq, entry, path

    def _branch_here(self) -> _Branch:
        """The branch of the calling task; a task's first call names it after its parent
        (the task that started it) and its rank among the parent's tasks."""
        task = asyncio.current_task()
        branch = _branch.get(None)
        if branch is None or branch.owner is not self:
            if self._root is None:
                self.enter()
            assert self._root is not None
            return self._root
        if branch.task is task:
            return branch
        child = _Branch(self, task, f"{branch.prefix}{branch.children}/")
        branch.children += 1
        self._children.append(child)
        _branch.set(child)
        return child

    def _alone(self) -> bool:
        """Whether the calling task is the only one of the run that can still make calls:
        then a wait without an answer parks the run at once."""
        branch = _branch.get(None)
        return (
            self._inflight == 0
            and (branch is None or branch is self._root)
            and all(c.task is None or c.task.done() for c in self._children)
        )

    def _busy(self) -> _Busy:
        """Around a call doing I/O (a step, opening a wait): the run does not park
        while one runs, so no step is ever cut off by a sibling task's wait."""
        return _Busy(self)

    async def _block(self, seq: int, kind: EntryKind, name: str, path: str) -> str:
        """Wait for the answer of an open wait while other tasks of the run go on."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._blocked[seq] = _Blocked(future, kind, name, path)
        if not self._stopping and (self._settler is None or self._settler.done()):
            self._settler = asyncio.get_running_loop().create_task(self._settle())
        try:
            result = await future
        except asyncio.CancelledError:
            self._cancelled(seq, kind, name)
            raise
        finally:
            self._blocked.pop(seq, None)
        return self._answered(seq, kind, name, path, result)

    def _cancelled(self, seq: int, kind: EntryKind, name: str) -> None:
        """asyncio cancelled a durable wait (`asyncio.wait_for` around it, say): the run
        fails, since a cancelled wait would be lost on replay. Our own cancellations
        (withdrawn losers of `any_of`, an execution that stops) are not that."""
        if seq in self._withdrawing or self.parked or self._stopping or self.fatal is not None:
            return
        self.fatal = errors.ConcurrencyError(
            f"run {self.run_id}: the wait {kind} {name!r} was cancelled while it "
            "waited; durable waits cannot be cancelled by asyncio (a cancelled "
            "wait would be lost on replay). Use ctx.any_of(...) to wait for the "
            "first of several, or timeout= on the wait itself.",
            run_id=self.run_id,
            key=name,
        )

    async def _settle(self) -> None:
        """Park the run once every task of it is blocked on a wait or done."""
        try:
            while self._blocked and not self.parked:
                await self._quiet()
                if not self._blocked:
                    return
                seqs = sorted(self._blocked)
                answers = await self._park(seqs)
                if not answers:
                    self.parked = True
                    for blocked in self._blocked.values():
                        if not blocked.future.done():
                            blocked.future.set_exception(Suspended())
                    return
                for seq, result in answers.items():
                    answered = self._blocked.get(seq)
                    if answered is not None and not answered.future.done():
                        answered.future.set_result(result)
                self._activity += 1
        except asyncio.CancelledError:
            raise  # the execution stops (`stop`)
        except BaseException as exc:  # lease lost, store failure: every blocked task ends
            for blocked in list(self._blocked.values()):
                if not blocked.future.done():
                    blocked.future.set_exception(exc)

    async def _quiet(self, mine: int = 0) -> None:
        """Return once no call of the run does I/O (but the caller's own `mine`) and none
        was made for a few turns of the event loop: every task left is blocked on a
        wait, done, or busy outside the run."""
        turns, seen = 0, self._activity
        while turns < _QUIET_TURNS:
            if self._inflight > mine:
                if self._eased is None:
                    self._eased = asyncio.Event()
                self._eased.clear()
                await self._eased.wait()
                turns, seen = 0, self._activity
                continue
            await asyncio.sleep(0)
            if self._activity != seen:
                turns, seen = 0, self._activity
            else:
                turns += 1

    async def _park(self, seqs: list[int]) -> dict[int, str | None]:
        with self._busy():
            answers = await self._exec.park(seqs, self._take_pending())
        if not answers:
            self.parked = True
        return answers

    async def stop(self) -> None:
        """The workflow function returned or raised: stop settling, and withdraw the waits
        it opened and left unanswered (their approvals leave the inboxes). Tasks it left
        running are stopped, but never in the middle of a step."""
        self._stopping = True
        if self._settler is None and not self._children and not self._blocked:
            return  # a run that started no task of its own (the usual case)
        if self._settler is not None and not self._settler.done():
            self._settler.cancel()
            with contextlib.suppress(BaseException):
                await self._settler
        tasks = [c.task for c in self._children if c.task is not None]
        if any(not t.done() for t in tasks):
            await self._quiet()
        self._withdrawing.update(self._blocked)
        for blocked in list(self._blocked.values()):
            if not blocked.future.done():
                blocked.future.cancel()
        for task in tasks:
            task.cancel()
        # Collect what the tasks ended with (parked, withdrawn): no "never retrieved".
        await asyncio.gather(*tasks, return_exceptions=True)

    def _note(self, seq: int, kind: EntryKind, name: str, path: str, result: str) -> None:
        """Record an answer known here (a reading of the clock, a choice): it is written
        with the next write of the run, in the same transaction."""
        entry = JournalEntry(
            seq=seq, kind=kind, name=name, status=EntryStatus.DONE, result=result, path=path
        )
        self._pending.append(entry)
        self._cursor.remember(entry)

    def _take_pending(self) -> list[JournalEntry]:
        pending, self._pending = self._pending, []
        return pending

    def unreplayed(self) -> JournalEntry | None:
        return self._cursor.unreplayed()

    def check_ended(self) -> None:
        """The workflow returned: raise what replay found wrong (a mismatch it may have
        caught, or a recorded call it never reached), if anything."""
        if self.fatal is not None:
            raise self.fatal
        left = self.unreplayed()
        if left is not None:
            raise mismatch(
                self.run_id, left.seq, f"{left.kind} {left.name!r}", "the end of the workflow"
            )

    def _check_key(self, key: str, what: str) -> None:
        if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
            raise errors.InvalidArgument(
                f"{what} must be a non-empty string of at most {_MAX_KEY} characters, "
                f"not {key!r:.60}"
            )
        serialization.to_jsonable(key, what)
