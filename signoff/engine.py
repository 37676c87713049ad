"""`Engine`: the public API. Register workflows, start runs, decide, signal, query.

```python
engine = Engine("sqlite:///signoff.db")

@engine.workflow()
async def refund(ctx: Context, order_id: str) -> dict: ...

async with engine:                      # runs an in-process worker
    run = await engine.start(refund, "ord-1")
    await engine.approve(run.id, "manager", by="alice")
    print(await engine.result(run.id))
```
Without `async with`, the engine still starts runs and records decisions (for example
from a web handler or the CLI); a worker elsewhere executes them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from signoff import (
    access,
    arguments,
    audit,
    clock,
    durations,
    errors,
    hooks,
    models,
    outbox,
    policy,
    preflight,
    runner,
    serialization,
    telemetry,
    worker,
)
from signoff.channels import deliverer as delivery
from signoff.channels import routing
from signoff.store import open_store
from signoff.store.base import Claim, DecideOutcome, Store

if TYPE_CHECKING:
    from signoff.sync import SyncEngine

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


_FINISHED = (models.RunStatus.COMPLETED, models.RunStatus.FAILED, models.RunStatus.CANCELLED)
_SETTLED = (models.RunStatus.WAITING, models.RunStatus.BLOCKED, *_FINISHED)
# How long a decision waits for a run that has not reached its approval yet.
_REACH_WAIT_TIMEOUT = 10.0


class Engine:
    """Durable workflows with human decisions, on one database.

    `url`: `sqlite:///file.db` (default `sqlite:///signoff.db`) or `postgresql://...`.
    `lease`: how long a worker's claim on a run lasts without a heartbeat; a crashed
    worker's runs are taken over after it. `poll_interval`: how often an idle worker
    looks for work made runnable by other processes. `concurrency`: runs executing at
    once in this process. `default_retry`: retry policy of steps that name none.
    `event_retention`: how long `notify` keeps an event for runs that wait on its key
    later (0: only runs already waiting receive it). `directory`: resolves the roles in
    approvers (`role:finance`); default `signoff.Directory()`, which knows no roles.
    `approval_timeout`: the deadline of approvals that name no `timeout` (default none).
    `notifications`: `signoff.channels.Route`s, which events reach which channels and
    people (docs/notifications.md); none: nothing is written or sent.
    `tracer_provider`, `meter_provider`: OpenTelemetry providers for this engine's spans
    and metrics (default: the global ones; docs/observability.md).

    `engine.hooks` takes your code around steps, waits and the end of runs
    (`signoff.hooks`).

    `engine.access` holds what the HTTP API needs besides these operations: API tokens
    (`engine.access.create_token`), the history tail of the live streams, idempotency
    records and signed-link uses.
    """

    def __init__(
        self,
        url: str = "sqlite:///signoff.db",
        *,
        clock: clock.Clock | None = None,
        lease: durations.Duration = "30s",
        poll_interval: durations.Duration = 0.05,
        concurrency: int = 256,
        default_retry: models.RetryPolicy | None = None,
        event_retention: durations.Duration = "1d",
        directory: policy.DirectoryLike | None = None,
        approval_timeout: durations.Duration | None = None,
        notifications: Iterable[routing.Route] | None = None,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        from signoff.clock import DatabaseClock

        self.url = url
        self.store: Store = open_store(url)
        self.clock = clock or DatabaseClock()
        self.access = access.Access(self.store, self.clock)
        self._registry: dict[str, runner.WorkflowDef] = {}
        self._worker: worker.Worker | None = None
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._sync: SyncEngine | None = None
        self._default_retry = default_retry or models.RetryPolicy()
        self._event_retention = durations.to_seconds(event_retention, "event_retention")
        self.directory: policy.DirectoryLike = directory or policy.Directory()
        self.approval_timeout: float | None = (
            None
            if approval_timeout is None
            else durations.to_seconds(approval_timeout, "approval_timeout")
        )
        # Checks of edits of gated calls' approvals, by key prefix (`signoff.gated`).
        self.edit_checks: dict[str, Callable[[Any], Any]] = {}
        self.routing = routing.Routing(notifications or ())
        self.telemetry = telemetry.Telemetry(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        self.hooks = hooks.Hooks()
        self._deliverer: delivery.Deliverer | None = None
        self._attach_outbox()
        self.configure(lease=lease, poll_interval=poll_interval, concurrency=concurrency)

    def configure(
        self,
        *,
        url: str | None = None,
        lease: durations.Duration | None = None,
        poll_interval: durations.Duration | None = None,
        concurrency: int | None = None,
    ) -> None:
        """Change settings given to the constructor (for example from command-line
        options). The database URL can change only before the engine first opens it."""
        if url is not None and url != self.url:
            if self._worker is not None or self.store.opened:
                raise errors.InvalidRunState("the engine is in use; set its URL before using it")
            self.store, self.url = open_store(url), url
            self.access = access.Access(self.store, self.clock)
            self._attach_outbox()
        if lease is not None:
            self._lease = durations.to_seconds(lease, "lease")
        if poll_interval is not None:
            self._poll = durations.to_seconds(poll_interval, "poll_interval")
        if concurrency is not None:
            if not isinstance(concurrency, int) or concurrency < 1:
                raise errors.InvalidArgument("concurrency must be a whole number of at least 1")
            self._concurrency = concurrency

    # registry ------------------------------------------------------------------------

    @overload
    def workflow(self, name: F, /) -> F: ...

    @overload
    def workflow(
        self,
        name: str | None = None,
        *,
        timeout: durations.Duration | None = None,
        version: str | None = None,
    ) -> Callable[[F], F]: ...

    def workflow(
        self,
        name: str | F | None = None,
        *,
        timeout: durations.Duration | None = None,
        version: str | None = None,
    ) -> F | Callable[[F], F]:
        """Register an `async def wf(ctx, ...)` as a workflow (name: its qualified name):
        `@engine.workflow`, `@engine.workflow()` or `@engine.workflow("name")`.
        `timeout` ("30d") bounds the whole run: past it the run fails with `RunTimedOut`
        whatever it waits for, and its open approvals are withdrawn.

        `version` ("2"): runs record the version they start on. Register several versions
        under one name (the old code as another function) and each run goes on with the
        code it started on, while new runs take the version registered last; a run whose
        version is no longer registered replays on the newest (see `ctx.patched`)."""
        if callable(name):
            return self.workflow()(name)
        seconds = None if timeout is None else durations.to_seconds(timeout, "timeout")
        if name is not None and not isinstance(name, str):
            raise errors.InvalidArgument(
                f"engine.workflow takes a workflow name (a string), not {name!r:.60}; "
                "use @engine.workflow, @engine.workflow() or @engine.workflow('name')"
            )

        def register(fn: F) -> F:
            if not callable(fn):
                raise errors.InvalidArgument(
                    f"@engine.workflow decorates an async function, not {fn!r:.60}"
                )
            wf_name = name or fn.__qualname__
            serialization.to_jsonable(wf_name, "workflow name")
            arguments.check_definition(wf_name, fn)
            if version is not None and (not isinstance(version, str) or not version):
                raise errors.InvalidArgument(
                    f"a workflow version is a non-empty string, not {version!r:.40}"
                )
            existing = self._registry.get(wf_name)
            versions = {} if existing is None else existing.versions
            known = versions.get(version)
            if known is not None and known.fn is fn:
                return fn  # decorated again: nothing changes
            if known is not None:
                which = "" if version is None else f" version {version!r}"
                raise errors.InvalidArgument(
                    f"a workflow named {wf_name!r}{which} is already registered; register "
                    "new code under another version="
                )
            made = runner.WorkflowDef.of(wf_name, fn, timeout=seconds, version=version)
            versions[version] = made = dataclasses.replace(made, versions=versions)
            self._registry[wf_name] = made  # the newest: new runs start on it
            fn.__signoff_workflow__ = wf_name  # type: ignore[attr-defined]
            return fn

        return register

    @property
    def workflows(self) -> list[str]:
        return sorted(self._registry)

    def _name_of(self, workflow: Callable[..., Any] | str) -> str:
        if isinstance(workflow, str):
            name = workflow
        else:
            name = getattr(workflow, "__signoff_workflow__", None) or ""
            if not name:
                raise errors.WorkflowNotFound(
                    f"{getattr(workflow, '__qualname__', workflow)!r} is not a registered "
                    "workflow; decorate it with @engine.workflow()"
                )
        return name

    # lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect to the database and migrate its schema (done on first use anyway), and
        set the engine's clock by the database's."""
        await self.store.open()
        await worker.sync_clock(self.store, self.clock)
        self.telemetry.bind(self.store)

    async def close(self) -> None:
        await self.stop_worker()
        await self._close_channels()
        await self.store.close()

    async def start_worker(self) -> None:
        """Run an in-process worker for the registered workflows until `stop_worker`."""
        if self._worker is not None:
            return
        await self.open()
        settings = runner.Settings(
            owner=worker.new_worker_id(),
            lease=self._lease,
            default_retry=self._default_retry,
            directory=self.directory,
            approval_timeout=self.approval_timeout,
            edit_checks=self.edit_checks,
            telemetry=self.telemetry,
            hooks=self.hooks,
        )
        self._worker = worker.Worker(
            store=self.store,
            clock_=self.clock,
            registry=self._registry,
            settings=settings,
            concurrency=self._concurrency,
            poll_interval=self._poll,
            on_settled=self._settled,
        )
        await self._worker.start()
        await self._start_deliverer(self._worker.id)

    async def stop_worker(self, drain_timeout: float = 30.0) -> None:
        await self._stop_deliverer()
        if self._worker is not None:
            current, self._worker = self._worker, None
            await current.stop(drain_timeout)

    async def __aenter__(self) -> Engine:
        await self.start_worker()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def sync(self) -> SyncEngine:
        """The same operations for code that is not async (scripts, Django, Flask)."""
        if self._sync is None:
            from signoff.sync import SyncEngine

            self._sync = SyncEngine(self)
        return self._sync

    # local hand-off ------------------------------------------------------------------

    def _claimer(self, workflow: str | None = None) -> tuple[str | None, float]:
        w = self._worker
        if w is None or (workflow is not None and not w.handles(workflow)):
            return None, 0.0
        return w.id, w.lease_until

    async def _hand_off(self, claim: Claim | None, owner: str | None) -> None:
        if claim is None or owner is None:
            return
        if self._worker is not None and self._worker.id == owner:
            self._worker.submit(claim)
        else:  # claimed for a worker that stopped meanwhile: let any worker take it
            await self.store.release(owner=owner, run_ids=[claim.run.id], now=self.clock.time())

    def _settled(self, run_id: str, outcome: str) -> None:
        for future in self._waiters.pop(run_id, []):
            if not future.done():
                future.set_result(None)

    # runs ----------------------------------------------------------------------------

    async def start(
        self,
        workflow: Callable[..., Any] | str,
        /,
        *args: Any,
        run_id: str | None = None,
        requested_by: str | None = None,
        **kwargs: Any,
    ) -> models.Run:
        """Start a run of `workflow` (the function or its name) with these arguments.

        `run_id` makes the start idempotent: starting again with the same id returns the
        existing run. `requested_by` records who asked for it.
        """
        name = self._name_of(workflow)
        serialization.check_texts((run_id, "run_id"), (requested_by, "requested_by"))
        if name not in self._registry:
            known = await self.store.known_workflows()
            if name not in known:
                listed = ", ".join(sorted(set(known) | set(self._registry))) or "none"
                raise errors.WorkflowNotFound(
                    f"no workflow named {name!r} (known: {listed})", workflow=name
                )
        input_json = serialization.dumps(
            {"args": list(args), "kwargs": kwargs}, where=f"the input of {name!r}"
        )
        if (wf_def := self._registry.get(name)) is not None:  # else: not known here
            plain = serialization.loads(input_json)
            given = [n for n, v in (("run_id", run_id), ("requested_by", requested_by)) if v]
            hints = dict(wf_def.params)
            arguments.check(name, wf_def.fn, hints, plain["args"], plain["kwargs"], taken=given)
        if run_id is not None and (not isinstance(run_id, str) or not 0 < len(run_id) <= 200):
            raise errors.InvalidArgument("run_id must be a non-empty string of <= 200 chars")
        owner, lease_until = self._claimer(name)
        now = self.clock.time()
        limit = None if wf_def is None else wf_def.timeout
        run, claim, created = await self.store.create_run(
            run_id=run_id or uuid.uuid4().hex,
            workflow=name,
            input_json=input_json,
            requested_by=requested_by,
            now=now,
            claim_for=owner,
            lease_until=lease_until,
            deadline=None if limit is None else now + limit,
            version=None if wf_def is None else wf_def.version,
        )
        if not created and (
            run.workflow != name
            or serialization.dumps({"args": run.args, "kwargs": run.kwargs}) != input_json
        ):
            raise errors.InvalidRunState(
                f"a run with id {run_id!r} already exists with a different workflow or input",
                run_id=run_id,
            )
        if created:
            self.telemetry.transition(name, run.status.value)
        await self._hand_off(claim, owner)
        return run

    async def get_run(self, run_id: str) -> models.Run:
        serialization.check_texts((run_id, "run_id"))
        return await self.store.get_run(run_id)

    async def list_runs(
        self,
        *,
        status: models.RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        before: tuple[float, str] | None = None,
    ) -> models.RunPage:
        """One page of runs, newest first, optionally filtered by status and workflow
        name: pass the page's `next_cursor` as `cursor` for the next one (`BadCursor` for
        one no page handed out). `before` (the created_at timestamp and id of a run) is
        the older way to say where to start."""
        status = None if status is None else _run_status(status)
        serialization.check_texts((workflow, "workflow"), (cursor, "cursor"))
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise errors.InvalidArgument(f"limit must be 1 to 10000, not {limit!r:.20}")
        if cursor is not None:
            at, last = policy.decode_run_cursor(cursor)
            # A cursor's time has microseconds; a stored one may have more: ask from just
            # past it and keep what is strictly older than the cursor's run.
            runs = await self.store.list_runs(
                status=status, workflow=workflow, limit=limit + 1 + _CURSOR_SLACK,
                before=(at + 1e-6, "\U0010ffff"),
            )  # fmt: skip
            mark = (models.from_timestamp(at), last)
            runs = [r for r in runs if (r.created_at, r.id) < mark]
        else:
            runs = await self.store.list_runs(
                status=status, workflow=workflow, limit=limit + 1, before=before
            )
        page = runs[:limit]
        more = len(runs) > limit
        next_cursor = (
            policy.encode_run_cursor(page[-1].created_at.timestamp(), page[-1].id) if more else None
        )
        return models.RunPage(page, next_cursor=next_cursor)

    async def count_runs(
        self, *, status: models.RunStatus | str | None = None, workflow: str | None = None
    ) -> int:
        """How many runs there are, optionally only those with this status or workflow."""
        status = None if status is None else _run_status(status)
        return await self.store.count_runs(status=status, workflow=workflow)

    async def history(self, run_id: str) -> list[models.HistoryEntry]:
        """Everything that happened to the run, oldest first."""
        await self.get_run(run_id)
        return await self.store.history(run_id)

    async def cancel(
        self, run_id: str, *, by: str | None = None, reason: str | None = None
    ) -> models.Run:
        """Cancel an unfinished run; its pending approvals close. A step executing right
        now finishes, but its result is not recorded and the run goes no further."""
        serialization.check_texts((run_id, "run_id"), (by, "by"), (reason, "reason"))
        return await self.store.cancel_run(
            run_id=run_id, by=by, reason=reason, now=self.clock.time()
        )

    async def retry(self, run_id: str, *, by: str | None = None) -> models.Run:
        """Resume a failed run from where it failed; recorded steps are not redone. A
        blocked run is replayed again as it is (it blocks again if the code still does
        not replay it)."""
        serialization.check_texts((run_id, "run_id"), (by, "by"))
        run = await self.store.get_run(run_id)
        owner, lease_until = self._claimer(run.workflow)
        claim = await self.store.retry_run(
            run_id=run_id, by=by, now=self.clock.time(), claim_for=owner, lease_until=lease_until
        )
        await self._hand_off(claim, owner)
        return await self.store.get_run(run_id)

    async def settle(self, run_id: str, *, timeout: float | None = 30.0) -> models.Run:
        """Wait until the run is waiting for something, blocked or finished; return it."""
        return await self._await_status(run_id, _SETTLED, timeout)

    async def result(self, run_id: str, *, timeout: float | None = None) -> Any:
        """Wait for the run to finish and return its result. Raises `RunFailed` or
        `RunCancelled`, or `TimeoutError` after `timeout` seconds."""
        run = await self._await_status(run_id, _FINISHED, timeout)
        if run.status is models.RunStatus.FAILED:
            error = run.error or {}
            raise errors.RunFailed(
                f"run {run_id} failed: {error.get('type')}: {error.get('message')}",
                run_id=run_id,
                error=error,
            )
        if run.status is models.RunStatus.CANCELLED:
            raise errors.RunCancelled(f"run {run_id} was cancelled", run_id=run_id)
        return run.result

    async def _await_status(
        self, run_id: str, wanted: tuple[models.RunStatus, ...], timeout: float | None
    ) -> models.Run:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        # Local executions notify at once; reading again covers other processes, less
        # often the longer we wait.
        wait = self._poll
        while True:
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(run_id, []).append(future)
            try:
                run = await self.store.get_run(run_id)
                if run.status in wanted:
                    return run
                wait = min(wait * 2, 1.0)
                pause = wait if deadline is None else min(wait, deadline - loop.time())
                if pause <= 0:
                    raise TimeoutError(f"run {run_id} is still {run.status} after {timeout}s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(future, pause)
            finally:
                self._discard_waiter(run_id, future)

    def _discard_waiter(self, run_id: str, future: asyncio.Future[None]) -> None:
        waiting = self._waiters.get(run_id)
        if waiting is not None and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._waiters[run_id]

    # decisions -----------------------------------------------------------------------

    async def approve(
        self,
        run_id: str,
        key: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        digest: str | None = None,
    ) -> models.Decision:
        """Approve the proposed value. Repeating the same decision returns it again.
        `digest` (the `Approval.digest` you were shown) refuses a decision on a stale view
        with `StaleDigest`. Under a quorum a vote that is not yet enough returns a
        decision with status `pending` and the votes so far."""
        return await self._decide(
            run_id, key, models.DecisionStatus.APPROVED, None, by, reason, digest
        )

    async def reject(
        self,
        run_id: str,
        key: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        digest: str | None = None,
    ) -> models.Decision:
        return await self._decide(
            run_id, key, models.DecisionStatus.REJECTED, None, by, reason, digest
        )

    async def edit(
        self,
        run_id: str,
        key: str,
        value: Any,
        *,
        by: str | None = None,
        reason: str | None = None,
        digest: str | None = None,
    ) -> models.Decision:
        """Approve with a changed value; the decision keeps the original as `original`.
        An approval with a `schema` refuses a value that does not fit it (`InvalidEdit`
        with `.errors`); it stays pending."""
        value_json = serialization.dumps(value, where="the edited value")
        prefix, _, n = key.rpartition(":") if isinstance(key, str) else ("", "", "")
        check = self.edit_checks.get(prefix) if n.isdigit() else None
        if check is not None:  # a gated call's edit must fit its function
            check(serialization.loads(value_json))
        return await self._decide(
            run_id, key, models.DecisionStatus.EDITED, value_json, by, reason, digest
        )

    async def answer(
        self,
        run_id: str,
        key: str,
        answer: Any,
        *,
        by: str | None = None,
        digest: str | None = None,
    ) -> models.Decision:
        """Answer a question a workflow asked with `ctx.ask`: text, or a value that fits
        the question's schema (`InvalidEdit` with `.errors` when it does not; the question
        stays open). To decline, `reject` it with a reason."""
        return await self.edit(run_id, key, answer, by=by, digest=digest)

    async def request_changes(
        self,
        run_id: str,
        key: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        digest: str | None = None,
    ) -> models.Decision:
        """Send the request back; the workflow may revise and ask again under the same key."""
        return await self._decide(
            run_id, key, models.DecisionStatus.CHANGES_REQUESTED, None, by, reason, digest
        )

    async def _decide(
        self,
        run_id: str,
        key: str,
        status: models.DecisionStatus,
        value_json: str | None,
        by: str | None,
        reason: str | None,
        digest: str | None = None,
    ) -> models.Decision:
        with self.telemetry.decision(run_id, key, status.value, by):
            serialization.check_texts(
                (run_id, "run_id"), (key, "approval key"), (by, "by"), (reason, "reason")
            )
            serialization.check_texts((digest, "digest"))
            if by == policy.TIMEOUT_ACTOR:
                raise errors.InvalidArgument(f"{by!r} is reserved for outcomes of on_timeout")
            outcome = await self._decide_once(run_id, key, status, value_json, by, reason, digest)
            if outcome.outcome == "approval_not_found":
                run = await self.store.get_run(run_id)
                if run.status in (models.RunStatus.PENDING, models.RunStatus.RUNNING):
                    # the run has not reached its wait yet: let it get there, then decide
                    try:
                        await self._await_status(run_id, _SETTLED, _REACH_WAIT_TIMEOUT)
                    except TimeoutError:
                        raise errors.ApprovalNotFound(
                            f"run {run_id} has not asked for approval {key!r}: it is still "
                            f"{run.status} after {_REACH_WAIT_TIMEOUT:.0f}s; is a worker running "
                            f"for workflow {run.workflow!r}?",
                            run_id=run_id,
                            key=key,
                        ) from None
                if run.status not in _FINISHED:  # it may also have parked since the first try
                    outcome = await self._decide_once(
                        run_id, key, status, value_json, by, reason, digest
                    )
            refused = policy.refusal(outcome.outcome, outcome.detail, run_id=run_id, key=key, by=by)
            if refused is not None:
                raise refused
            return _decision_or_raise(outcome, run_id, key)

    async def _decide_once(
        self,
        run_id: str,
        key: str,
        status: models.DecisionStatus,
        value_json: str | None,
        by: str | None,
        reason: str | None,
        digest: str | None = None,
    ) -> DecideOutcome:
        await worker.sync_clock(self.store, self.clock)  # a deadline is judged by the database
        owner, lease_until = self._claimer()
        outcome = await self.store.decide(
            run_id=run_id,
            key=key,
            status=status,
            value_json=value_json,
            by=by,
            reason=reason,
            digest=digest,
            now=self.clock.time(),
            claim_for=owner,
            lease_until=lease_until,
        )
        self.telemetry.decided(outcome, by)
        await self._hand_off(outcome.claim, owner)
        return outcome

    async def pending_approvals(
        self,
        *,
        approver: str | None = None,
        role: str | None = None,
        workflow: str | None = None,
        key_prefix: str | None = None,
        run_id: str | None = None,
        older_than: durations.Duration | datetime.datetime | None = None,
        overdue: bool = False,
        order: Literal["oldest", "urgent"] = "oldest",
        limit: int = 100,
        cursor: str | None = None,
    ) -> models.ApprovalPage:
        """The inbox: approvals waiting for a decision, one page at a time.

        `approver`: those this person may decide (named, through a role, after an
        escalation, or open to anyone and not requested by them); `role`: those named
        for `role:ROLE`; `older_than`: requested more than this long ago (or before this
        datetime); `overdue`: only those whose deadline has passed (and that the deadline
        timer has not closed yet). `order`: "oldest" (the default) oldest request first;
        "urgent" soonest deadline first, those without one after, then oldest first.
        The page is a list of `Approval` with `.next_cursor` (pass as `cursor=` with
        the same order; None on the last page) and `.total`.
        """
        serialization.check_texts(
            (approver, "approver"),
            (role, "role"),
            (workflow, "workflow"),
            (key_prefix, "key_prefix"),
            (run_id, "run_id"),
            (cursor, "cursor"),
        )
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise errors.InvalidArgument("limit must be a whole number from 1 to 10000")
        if role is not None and role.startswith(policy.ROLE):
            role = role[len(policy.ROLE) :]
        before = None
        if isinstance(older_than, datetime.datetime):
            before = older_than.timestamp()
        elif older_than is not None:
            before = self.clock.time() - durations.to_seconds(older_than, "older_than")
        if order not in ("oldest", "urgent"):
            raise errors.InvalidArgument('order must be "oldest" or "urgent"')
        after, after_due = None, None
        if cursor is not None:
            after, after_due = policy.decode_inbox_cursor(cursor)
            if (after_due is not None) != (order == "urgent"):
                raise errors.InvalidArgument(
                    f"cursor {cursor!r:.60} is from a page in another order; "
                    f'pass it with the order of that page (order="{order}" here)'
                )
        return await self.store.pending_approvals(
            approver=approver,
            role=role,
            workflow=workflow,
            key_prefix=key_prefix,
            run_id=run_id,
            requested_before=before,
            due_before=self.clock.time() if overdue else None,
            order=order,
            after=after,
            after_due=after_due,
            limit=limit,
        )

    async def decided_approvals(
        self, *, by: str, limit: int = 50, cursor: str | None = None
    ) -> models.ApprovalPage:
        """The approval rounds person `by` decided or voted on, newest vote first, one
        page at a time (`.next_cursor`, `.total`), each with its votes and outcome."""
        serialization.check_texts((by, "by"), (cursor, "cursor"))
        if not isinstance(by, str) or not by:
            raise errors.InvalidArgument("by must be a person's name")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise errors.InvalidArgument("limit must be a whole number from 1 to 10000")
        after = None if cursor is None else policy.decode_decided_cursor(cursor)
        return await self.store.decided_approvals(voter=by, after=after, limit=limit)

    async def approvals(self, run_id: str) -> list[models.Approval]:
        """Every approval round of one run, decided or not."""
        await self.get_run(run_id)
        return await self.store.run_approvals(run_id)

    # signals -------------------------------------------------------------------------

    async def signal(
        self, run_id: str, name: str, data: Any = None, *, by: str | None = None
    ) -> None:
        """Send `data` to the run under `name`; kept until the run waits for it."""
        if not isinstance(name, str) or not name:
            raise errors.InvalidArgument("signal name must be a non-empty string")
        serialization.check_texts((run_id, "run_id"), (name, "signal name"), (by, "by"))
        payload = serialization.dumps(data, where=f"the data of signal {name!r}")
        owner, lease_until = self._claimer()
        outcome, claim = await self.store.send_signal(
            run_id=run_id,
            name=name,
            payload_json=payload,
            by=by,
            now=self.clock.time(),
            claim_for=owner,
            lease_until=lease_until,
        )
        if outcome == "run_not_found":
            raise errors.RunNotFound(f"no run with id {run_id!r}", run_id=run_id)
        if outcome in ("completed", "failed", "cancelled"):
            raise errors.InvalidRunState(
                f"run {run_id} is {outcome}; it takes no more signals", run_id=run_id
            )
        await self._hand_off(claim, owner)

    # events --------------------------------------------------------------------------

    async def notify(self, key: str, data: Any = None, *, by: str | None = None) -> list[str]:
        """Publish an event on `key`: every run waiting on it whose `where` filter matches
        resumes with `data`; the event is also kept for `event_retention`, for runs that
        wait on the key later. Returns the ids of the runs woken now."""
        if not isinstance(key, str) or not key or len(key) > 200:
            raise errors.InvalidArgument(
                f"event key must be a non-empty string of at most 200 characters, not {key!r:.60}"
            )
        serialization.check_texts((key, "event key"), (by, "by"))
        payload = serialization.dumps(data, where=f"the data of event {key!r}")
        owner, lease_until = self._claimer()
        w = self._worker
        local = tuple(n for n in self._registry if w is not None and w.handles(n))
        now = self.clock.time()
        woken, claims = await self.store.notify_event(
            key=key,
            data_json=payload,
            by=by,
            now=now,
            expires_at=now + self._event_retention,
            claim_for=owner,
            claim_workflows=local,
            lease_until=lease_until,
        )
        for claim in claims:
            await self._hand_off(claim, owner)
        return woken

    # run ids and databases, for surfaces where people type -----------------------------

    async def resolve_run_id(self, prefix: str) -> str:
        """The full id of the run whose id is `prefix`, or else the one run whose id starts
        with it (at least 6 characters, as the demo and tables show ids shortened).
        `RunNotFound` if none, `AmbiguousRunId` (with `.candidates`) if several."""
        serialization.check_texts((prefix, "run_id"))
        if not isinstance(prefix, str) or not prefix:
            raise errors.InvalidArgument("a run id must be a non-empty string")
        found = await self.store.resolve_run_id(prefix, limit=3)
        if found and (found[0] == prefix or (len(found) == 1 and len(prefix) >= _MIN_PREFIX)):
            return found[0]
        if len(found) > 1 and len(prefix) >= _MIN_PREFIX:
            shown = ", ".join(found[:2]) + (", ..." if len(found) > 2 else "")
            raise errors.AmbiguousRunId(
                f"{prefix!r} is the start of several run ids ({shown}); give more of the id",
                run_id=prefix,
                candidates=found,
            )
        hint = f" (a shortened id needs {_MIN_PREFIX} characters or more)" if found else ""
        raise errors.RunNotFound(f"no run with id {prefix!r}{hint}", run_id=prefix)

    async def require_database(self) -> None:
        """Raise `DatabaseNotFound` unless the database exists; never creates it."""
        await self.store.require_existing()

    # housekeeping ----------------------------------------------------------------------

    async def purge(
        self,
        older_than: durations.Duration | datetime.datetime,
        *,
        workflow: str | None = None,
        dry_run: bool = False,
        archive: str | os.PathLike[str] | None = None,
        batch: int = 500,
    ) -> models.PurgeReport:
        """Remove finished runs (completed, failed, cancelled) that finished more than
        `older_than` ago (a duration, or a datetime), with every row of theirs: journal,
        history, approvals and votes, signals, delivered notifications, audit chain (its
        length and last hash stay on the `purged` chain). A run with a notification not
        yet delivered waits for it. Also removes idempotency records older than that and
        used link nonces once no link could still carry them.

        `archive`: a file that gets each run whole as one JSON line (appended, and on
        disk before the run is removed). `dry_run`: count, remove nothing (an archive is
        still written: an export). Works in batches of `batch` runs, one transaction
        each, so other work goes on meanwhile."""
        if isinstance(older_than, datetime.datetime):
            cutoff = older_than.timestamp()
        else:
            cutoff = self.clock.time() - durations.to_seconds(older_than, "older_than")
        serialization.check_texts((workflow, "workflow"))
        if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 10_000:
            raise errors.InvalidArgument("batch must be a whole number from 1 to 10000")
        sink = None if archive is None else open(archive, "a", encoding="utf-8")  # noqa: SIM115
        runs = archived = 0
        after: str | None = None
        try:
            while True:
                ids = await self.store.purgeable_runs(
                    cutoff=cutoff, workflow=workflow, after=after, limit=batch
                )
                if not ids:
                    break
                after = ids[-1]
                if sink is not None:
                    for record in await self.store.run_records(ids):
                        sink.write(json.dumps(record, separators=(",", ":")) + "\n")
                        archived += 1
                    sink.flush()
                    os.fsync(sink.fileno())
                if dry_run:
                    runs += len(ids)
                else:
                    now = self.clock.time()
                    runs += len(await self.store.purge_runs(ids, cutoff, now))
        finally:
            if sink is not None:
                sink.close()
        nonces_before = min(cutoff, self.clock.time() - access.LINK_MAX_AGE)
        if dry_run:
            keys = await self.store.expired_keys(
                idempotency_before=cutoff, nonces_before=nonces_before
            )
        else:
            keys = await self.store.purge_keys(cutoff, nonces_before)
        return models.PurgeReport(
            runs=runs,
            idempotency_records=keys[0],
            link_nonces=keys[1],
            archived=archived,
            dry_run=dry_run,
        )

    # deploys ---------------------------------------------------------------------------

    async def check(self) -> preflight.CheckReport:
        """Preflight for a deploy: replay every unfinished run's journal against the
        workflows registered here (nothing runs, nothing is written) and report the runs
        this code would not replay, with the position, the recorded and the found call."""
        return await preflight.check(self)

    # the audit chain -------------------------------------------------------------------

    async def audit_log(
        self, run_id: str | None = None, *, page_size: int = 1000
    ) -> AsyncIterator[audit.AuditEntry]:
        """The audit chains (of one run, or all and the "tokens" chain), entry by entry
        in chain order: what `signoff audit export` writes."""
        after: tuple[str, int] | None = None
        while True:
            page = await self.store.audit_entries(chain=run_id, after=after, limit=page_size)
            for entry in page:
                yield entry
            if len(page) < page_size:
                return
            after = (page[-1].chain, page[-1].seq)

    async def verify_audit(self, run_id: str | None = None) -> audit.Verifier:
        """Check the audit chains: `.problems` lists every changed, removed or reordered
        entry (empty when whole); `.entries` and `.chains` say how much was checked."""
        verifier = audit.Verifier()
        async for entry in self.audit_log(run_id):
            verifier.feed([entry])
        return verifier

    # notifications: the outbox and its deliveries --------------------------------------

    def _attach_outbox(self) -> None:
        # No routes, no plan: write operations spend nothing on notifications.
        self.store.outbox_plan = self.routing if self.routing.routes else None

    def _new_deliverer(self, owner: str) -> delivery.Deliverer:
        return delivery.Deliverer(
            telemetry=self.telemetry,
            store=self.store,
            clock_=self.clock,
            channels=self.routing.channels,
            directory=self.directory,
            owner=owner,
            poll_interval=max(self._poll, 0.05),
        )

    async def _start_deliverer(self, owner: str) -> None:
        if self.routing.channels and self._deliverer is None:
            self._deliverer = self._new_deliverer(owner)
            await self._deliverer.start()

    async def _stop_deliverer(self) -> None:
        if self._deliverer is not None:
            current, self._deliverer = self._deliverer, None
            await current.stop()

    async def _close_channels(self) -> None:
        for channel in self.routing.channels.values():
            with contextlib.suppress(Exception):  # one that cannot close holds up nothing
                await channel.close()

    async def deliveries(
        self,
        *,
        status: outbox.DeliveryStatus | str | None = None,
        run_id: str | None = None,
        channel: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> outbox.DeliveryPage:
        """Notifications, newest first, each with every attempt and its outcome; one page
        (`.next_cursor`: pass it as `cursor=` for the next; None on the last page)."""
        serialization.check_texts((run_id, "run_id"), (channel, "channel"), (cursor, "cursor"))
        if status is not None:
            try:
                status = outbox.DeliveryStatus(status).value
            except ValueError:
                choices = ", ".join(s.value for s in outbox.DeliveryStatus)
                raise errors.InvalidArgument(
                    f"unknown delivery status {status!r}; use one of: {choices}"
                ) from None
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise errors.InvalidArgument("limit must be a whole number from 1 to 1000")
        found = await self.store.deliveries(
            status=status,
            run_id=run_id,
            channel=channel,
            limit=limit + 1,
            before=None if cursor is None else _decode_delivery_cursor(cursor),
        )
        more = len(found) > limit
        found = found[:limit]
        last = found[-1] if more else None
        next_cursor = None if last is None else _delivery_cursor(last)
        return outbox.DeliveryPage(found, next_cursor=next_cursor)

    async def retry_delivery(self, id: str, *, attempts: int = 3) -> outbox.Delivery:
        """Try a dead (or waiting) notification again now, with `attempts` more tries."""
        serialization.check_texts((id, "delivery id"))
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise errors.InvalidArgument("attempts must be a whole number of at least 1")
        outcome = await self.store.retry_delivery(id=id, now=self.clock.time(), attempts=attempts)
        if outcome == "not_found":
            raise errors.InvalidArgument(f"no notification with id {id!r}")
        if outcome != "ok":
            raise errors.InvalidArgument(
                f"notification {id} is {outcome}; only dead or waiting ones can be retried"
            )
        if self._deliverer is not None:
            self._deliverer.wake()
        found = await self.store.get_delivery(id)
        assert found is not None
        return found

    async def deliver_notifications(self) -> int:
        """Deliver the notifications due now from this process, waiting for each
        outcome (a worker does this on its own); how many attempts were made."""
        if not self.routing.channels:
            return 0
        deliverer = self._deliverer or self._new_deliverer(worker.new_worker_id())
        return await deliverer.run_once()

    # deprecated: moved to `engine.access`; they warn, and go in the next release -------

    create_token = access.Moved(access.Access.create_token, "engine.access.create_token")
    list_tokens = access.Moved(access.Access.list_tokens, "engine.access.list_tokens")
    revoke_token = access.Moved(access.Access.revoke_token, "engine.access.revoke_token")
    authenticate = access.Moved(access.Access.authenticate, "engine.access.authenticate")
    events = access.Moved(access.old_events, "engine.access.history_since")
    last_event_id = access.Moved(access.old_last_event_id, "engine.access.last_history_id")


_MIN_PREFIX = 6
_CURSOR_SLACK = 8  # runs created within a microsecond of a page's last


def _delivery_cursor(last: outbox.Delivery) -> str:
    raw = json.dumps([last.created_at.timestamp(), last.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_delivery_cursor(cursor: str) -> tuple[float, str]:
    try:
        at, id_ = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(at), str(id_)
    except (ValueError, TypeError):
        raise errors.InvalidArgument(f"not a deliveries cursor: {cursor!r:.60}") from None


def _run_status(status: models.RunStatus | str) -> models.RunStatus:
    try:
        return models.RunStatus(status)
    except ValueError:
        choices = ", ".join(s.value for s in models.RunStatus)
        raise errors.InvalidArgument(f"unknown status {status!r}; use one of: {choices}") from None


def _decision_or_raise(outcome: DecideOutcome, run_id: str, key: str) -> models.Decision:
    kind, decision = outcome.outcome, outcome.decision
    if kind in ("decided", "voted", "duplicate") and decision is not None:
        return decision
    if kind == "run_not_found":
        raise errors.RunNotFound(f"no run with id {run_id!r}", run_id=run_id)
    if kind == "approval_not_found":
        keys = ", ".join(repr(k) for k in outcome.pending_keys) or "none"
        raise errors.ApprovalNotFound(
            f"run {run_id} has no approval {key!r} (its approvals: {keys})", run_id=run_id, key=key
        )
    if kind == "expired":
        raise errors.ApprovalExpired(
            f"approval {key!r} of run {run_id} expired before this decision",
            run_id=run_id,
            key=key,
            decision=decision,
        )
    if kind == "closed":
        raise errors.ApprovalClosed(
            f"run {run_id} has ended; approval {key!r} can no longer be decided",
            run_id=run_id,
            key=key,
            decision=decision,
        )
    assert decision is not None
    raise errors.DecisionConflict(
        f"approval {key!r} of run {run_id} was already {decision.status}"
        f"{' by ' + decision.by if decision.by else ''}; the first decision stands",
        run_id=run_id,
        key=key,
        decision=decision,
    )
