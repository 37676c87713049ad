"""The one store contract, with its domain operations written once.

A backend supplies how to run an operation (`_write` in one write transaction, `_read`
in one read snapshot) and how to open and close; every domain method below is shared.
Each method states its atomicity; all of them are safe to call from several processes.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from signoff import audit, errors, models, outbox
from signoff.journal import JournalEntry
from signoff.store import (
    schema,
    sql,
    sql_api,
    sql_audit,
    sql_events,
    sql_inbox,
    sql_metrics,
    sql_outbox,
    sql_purge,
    sql_runs,
    sql_waits,
)
from signoff.store.sql import Claim, Dialect, LeaseLost, Op
from signoff.store.sql_waits import DecideOutcome, WaitOutcome, WaitRequest

T = TypeVar("T")
P = ParamSpec("P")

__all__ = ["Claim", "DecideOutcome", "LeaseLost", "Store", "WaitOutcome", "WaitRequest"]


def _op(fn: Callable[..., Op[T]], *args: Any, **kw: Any) -> Callable[[], Op[T]]:
    """A write operation as a factory, so a backend may run it again after a rollback."""
    return functools.partial(fn, *args, **kw)


class _Operation(Generic[P, T]):
    """A store method that runs one SQL operation (`sql_*.fn`) in one transaction, with
    the operation's own typed signature: the contract's argument and outcome types are
    the operation's, so the engine and runtime cannot pass what the store does not take."""

    def __init__(self, fn: Callable[P, Op[T]], *, write: bool, doc: str) -> None:
        self.fn = fn
        self.write = write
        self.__doc__ = doc

    @overload
    def __get__(self, store: None, owner: type[Any]) -> _Operation[P, T]: ...
    @overload
    def __get__(self, store: Store, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(
        self, store: Store | None, owner: type[Any]
    ) -> _Operation[P, T] | Callable[P, Awaitable[T]]:
        if store is None:
            return self
        run = store._write if self.write else store._read
        fn = self.fn
        if store.outbox_plan is not None and self.write:  # changes may write notifications
            fn = sql_outbox.scoped(fn, store.outbox_plan)

        def call(*args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
            # the backend's own coroutine, not one more around it (one frame fewer per op)
            return run(functools.partial(fn, *args, **kwargs))

        call.__doc__ = self.__doc__
        return call


def _writes(fn: Callable[P, Op[T]], doc: str) -> _Operation[P, T]:
    return _Operation(fn, write=True, doc=doc)


Listener = tuple[Callable[[], None], asyncio.AbstractEventLoop | None]


def listener(callback: Callable[[], None]) -> Listener:
    """`callback` with the event loop it is registered from (None outside any)."""
    try:
        return callback, asyncio.get_running_loop()
    except RuntimeError:
        return callback, None


def tell(listeners: list[Listener]) -> None:
    """Call each listener in its own loop: at once if that is this one (or it has none),
    else handed to it (nothing if it has closed)."""
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    for callback, loop in listeners:
        if loop is None or loop is here:
            callback()
        else:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(callback)


class Store(abc.ABC):
    """Persistence for runs, journals, approvals, signals and history."""

    dialect: Dialect
    url: str
    # Where notifications go (`signoff.outbox.Plan`), set by the engine; None: nowhere,
    # and no write operation spends anything on them.
    outbox_plan: outbox.Plan | None = None
    # (callback, its loop) per commit listener; replaced, never changed in place
    _commit_listeners: list[Listener] = []

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date (safe to call when already open)."""

    @property
    def opened(self) -> bool:
        """Whether the store holds connections (it opens itself on first use)."""
        return False

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish queued work and release connections."""

    @abc.abstractmethod
    async def _write(self, op: Callable[[], Op[T]]) -> T:
        """Run the operation `op()` in one write transaction; roll back all it did if it
        raises. `op` is a factory so that a backend may run it again after a rollback."""

    @abc.abstractmethod
    async def _read(self, op: Callable[[], Op[T]]) -> T:
        """Run `op` against one consistent snapshot, writing nothing."""

    async def schema_version(self) -> int:
        return await self._read(_op(schema.current_version))

    def add_wakeup_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` (in the caller's event loop) when another process may have made
        a run runnable. A no-op where the backend cannot tell (workers then poll)."""
        return None

    def remove_wakeup_listener(self, callback: Callable[[], None]) -> None:
        """Stop calling `callback`."""
        return None

    def add_commit_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` (in the caller's event loop) after each write transaction of
        this store object commits: the live streams read the new history then, instead
        of at their next poll. It must be quick; calls may come in bursts."""
        self._commit_listeners = [*self._commit_listeners, listener(callback)]

    def remove_commit_listener(self, callback: Callable[[], None]) -> None:
        """Stop calling `callback`."""
        self._commit_listeners = [(c, lp) for c, lp in self._commit_listeners if c != callback]

    def _committed(self) -> None:
        """Tell the commit listeners; a backend calls it once a write has committed."""
        if self._commit_listeners:
            tell(self._commit_listeners)

    # runs ----------------------------------------------------------------------------

    create_run = _writes(
        sql_runs.create_run,
        """Insert a run and its `run_started` event atomically; idempotent on `run_id`.""",
    )

    claim_runnable = _writes(
        sql_runs.claim_runnable,
        """Lease runnable runs to one worker, bumping each run's fencing token.""",
    )

    async def poll(self, *, workflows: list[str], now: float, owner: str) -> tuple[bool, bool]:
        """(a timer is due, a run could be claimed by `owner`): one cheap read."""
        return await self._read(_op(sql_runs.poll, workflows=workflows, now=now, owner=owner))

    async def heartbeat(self, *, owner: str, lease_until: float) -> int:
        """Extend every lease `owner` holds; returns how many."""
        return await self._write(_op(sql_runs.heartbeat, owner=owner, lease_until=lease_until))

    async def release(self, *, owner: str, run_ids: list[str], now: float) -> int:
        """Hand back held runs (on shutdown) so another worker may take them at once."""
        return await self._write(_op(sql_runs.release, owner=owner, run_ids=run_ids, now=now))

    record_step = _writes(
        sql_runs.record_step,
        """Journal a step result under the fencing token; raises `LeaseLost` if stale.""",
    )

    record_attempt_failure = _writes(
        sql_runs.record_attempt_failure,
        """Record a failed attempt of a step that will be retried, under the fencing token.""",
    )

    finish_run = _writes(
        sql_runs.finish_run,
        """Complete or fail the run under the fencing token; raises `LeaseLost` if stale.""",
    )

    block_run = _writes(
        sql_runs.block_run,
        """Park the run as blocked (replay no longer matches its journal) under the fencing
        token, with its history entry and notification; raises `LeaseLost` if stale.""",
    )
    unblock_run = _writes(
        sql_runs.unblock_run,
        """Make a blocked run runnable again, atomically with its history entry; returns
        ("ok", claim) or why not (its status, or "not_found"). A run no longer blocked
        is left alone.""",
    )

    async def cancel_run(
        self, *, run_id: str, by: str | None, reason: str | None, now: float
    ) -> models.Run:
        """Cancel the run and close its pending approvals, atomically."""
        outcome, run = await self._write(
            _op(sql_runs.cancel_run, run_id=run_id, by=by, reason=reason, now=now)
        )
        if outcome == "not_found":
            raise errors.RunNotFound(f"no run with id {run_id!r}", run_id=run_id)
        if outcome == "finished" or run is None:
            raise errors.InvalidRunState(
                f"run {run_id} has already finished; only unfinished runs can be cancelled",
                run_id=run_id,
            )
        return run

    async def retry_run(
        self, *, run_id: str, by: str | None, now: float, claim_for: str | None, lease_until: float
    ) -> Claim | None:
        """Make a failed run runnable again, dropping its failed step's record; or a
        blocked run, keeping its journal whole."""
        outcome, claim = await self._write(
            _op(
                sql_runs.retry_run,
                run_id=run_id,
                by=by,
                now=now,
                claim_for=claim_for,
                lease_until=lease_until,
            )
        )
        if outcome == "not_found":
            raise errors.RunNotFound(f"no run with id {run_id!r}", run_id=run_id)
        if outcome != "ok":
            raise errors.InvalidRunState(
                f"run {run_id} is {outcome}; only failed or blocked runs can be retried",
                run_id=run_id,
            )
        return claim

    async def get_run(self, run_id: str) -> models.Run:
        run = await self._read(_op(sql_runs.get_run, run_id))
        if run is None:
            raise errors.RunNotFound(f"no run with id {run_id!r}", run_id=run_id)
        return run

    async def get_journal(self, run_id: str) -> list[JournalEntry]:
        return await self._read(_op(sql_runs.get_journal, run_id))

    async def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[models.Run]:
        return await self._read(
            _op(sql_runs.list_runs, status=status, workflow=workflow, limit=limit, before=before)
        )

    async def count_runs(self, *, status: str | None = None, workflow: str | None = None) -> int:
        return await self._read(_op(sql_runs.count_runs, status=status, workflow=workflow))

    async def history(self, run_id: str) -> list[models.HistoryEntry]:
        return await self._read(_op(sql_runs.get_history, run_id))

    async def register_workflows(self, names: list[str], now: float) -> None:
        await self._write(_op(sql_runs.register_workflows, names=names, now=now))

    async def known_workflows(self) -> list[str]:
        return await self._read(_op(sql_runs.known_workflows))

    async def gauges(self) -> sql_metrics.Gauges:
        """Runs by workflow and status, and pending approvals by workflow with the oldest
        one's request time; one read snapshot (what `/metrics` and the gauges show)."""
        return await self._read(_op(sql_metrics.gauges))

    # waits ---------------------------------------------------------------------------

    open_wait = _writes(
        sql_waits.open_wait,
        """Park the run on a wait, or answer at once from a kept signal; one transaction.""",
    )

    async def park(
        self, *, run_id: str, fence: int, seqs: list[int], extra: list[JournalEntry], now: float
    ) -> dict[int, str | None]:
        """Park the run on its open waits `seqs` (any answer to one wakes it), unless
        some were answered meanwhile: then return those answers, run left running."""
        answers: dict[int, str | None] = await self._write(
            _op(sql_waits.park, run_id=run_id, fence=fence, seqs=seqs, extra=extra, now=now)
        )
        return answers

    async def close_waits(
        self, *, run_id: str, fence: int, seqs: list[int], extra: list[JournalEntry], now: float
    ) -> None:
        """Withdraw open waits of the running run (approvals leave the inboxes); one
        transaction with `extra` entries (the journaled choice of `any_of`)."""
        await self._write(
            _op(sql_waits.close_waits, run_id=run_id, fence=fence, seqs=seqs, extra=extra, now=now)
        )

    decide = _writes(
        sql_waits.decide,
        """Record a decision if the approval is still pending (first writer wins) and wake
        the run; all in one transaction. Never raises for conflicts: see the outcome.""",
    )

    send_signal = _writes(
        sql_waits.send_signal,
        """Deliver a signal to the waiting run or keep it for later; one transaction.""",
    )

    notify_event = _writes(
        sql_events.notify,
        """Keep an event and wake every run waiting on its key whose filter matches;
        one transaction. Returns the woken run ids and claims made for `claim_for`.""",
    )

    fire_timers = _writes(
        sql_waits.fire_timers,
        """Resolve due waits (expire, time out, wake) and make their runs runnable.""",
    )

    async def pending_approvals(self, **kw: Any) -> models.ApprovalPage:
        """One page of pending approvals and the total count, from one snapshot
        (filters: see `sql_inbox.InboxQuery`)."""
        return await self._read(_op(sql_inbox.page, sql_inbox.InboxQuery(**kw)))

    async def decided_approvals(
        self, *, voter: str, after: tuple[float, str, str, int] | None, limit: int
    ) -> models.ApprovalPage:
        """One page of the approval rounds a person decided or voted on, newest first."""
        query = sql_inbox.DecidedQuery(voter=voter, after=after, limit=limit)
        return await self._read(_op(sql_inbox.decided, query))

    async def run_approvals(self, run_id: str) -> list[models.Approval]:
        return await self._read(_op(sql_inbox.run_approvals, run_id))

    # HTTP API: tokens, idempotency records, link uses, history tail ------------------

    async def create_token(self, **kw: Any) -> sql_api.ApiToken:
        """Insert a token (its hash only); one statement."""
        return await self._write(_op(sql_api.create_token, **kw))

    async def token_by_hash(self, hash: str) -> sql_api.ApiToken | None:
        return await self._read(_op(sql_api.token_by_hash, hash))

    async def list_tokens(self) -> list[sql_api.ApiToken]:
        return await self._read(_op(sql_api.list_tokens))

    async def revoke_token(
        self, *, id: str, now: float, by: str | None = None
    ) -> sql_api.ApiToken | None:
        """Mark the token revoked (idempotent); None if there is no such token."""
        return await self._write(_op(sql_api.revoke_token, id=id, now=now, by=by))

    async def get_response(self, *, subject: str, key: str) -> sql_api.StoredResponse | None:
        return await self._read(_op(sql_api.get_response, subject=subject, key=key))

    async def save_response(self, **kw: Any) -> sql_api.StoredResponse:
        """Keep a response under (subject, key) unless one is kept; first writer wins."""
        return await self._write(_op(sql_api.save_response, **kw))

    async def use_link(self, **kw: Any) -> bool:
        """Record a link's nonce as used; False if it was already (conditional insert)."""
        return await self._write(_op(sql_api.use_link, **kw))

    async def link_used(self, nonce: str) -> bool:
        return await self._read(_op(sql_api.link_used, nonce))

    async def release_link(self, nonce: str) -> None:
        await self._write(_op(sql_api.release_link, nonce))

    async def history_after(
        self, *, after_id: int, run_id: str | None = None, limit: int = 500
    ) -> list[models.HistoryEntry]:
        return await self._read(
            _op(sql_api.history_after, after_id=after_id, run_id=run_id, limit=limit)
        )

    async def last_history_id(self) -> int:
        return await self._read(_op(sql_api.last_history_id))

    async def inbox_principals(self, run_id: str, key: str) -> list[str]:
        """Whose inbox holds the pending approval `key` of `run_id`; reads."""
        return await self._read(_op(sql_api.inbox_principals, run_id, key))

    async def resolve_run_id(self, prefix: str, *, limit: int = 3) -> list[str]:
        """`[prefix]` if a run has that id, else up to `limit` ids starting with it; reads."""
        return await self._read(_op(sql_runs.resolve_run_id, prefix, limit=limit))

    async def require_existing(self) -> None:
        """Raise `DatabaseNotFound` if the database does not exist yet, without creating
        it. (A backend that cannot tell without connecting lets the connection say so.)"""
        return None

    async def reserve_response(self, **kw: Any) -> sql_api.StoredResponse | None:
        """Reserve an idempotency key for a request (conditional insert: one of concurrent
        requests wins); None when reserved, else what is kept under the key."""
        return await self._write(_op(sql_api.reserve_response, **kw))

    async def finish_response(self, **kw: Any) -> None:
        """Keep the answer under a key reserved by `reserve_response`."""
        await self._write(_op(sql_api.finish_response, **kw))

    async def release_response(self, **kw: Any) -> None:
        await self._write(_op(sql_api.release_response, **kw))

    async def record_history(self, **kw: Any) -> None:
        """Append one history entry to a run; one statement."""
        await self._write(_op(sql_api.record_history, **kw))

    async def database_time(self) -> float:
        """The database's current time (epoch seconds): the clock every process judges
        deadlines and leases by (`signoff.clock.DatabaseClock`)."""
        value: float = await self._read(_op(sql.database_time))
        return value

    async def audit_entries(
        self, *, chain: str | None = None, after: tuple[str, int] | None = None, limit: int = 1000
    ) -> list[audit.AuditEntry]:
        """A page of the audit chains in (chain, seq) order; reads."""
        page: list[audit.AuditEntry] = await self._read(_op(sql_audit.entries, chain, after, limit))
        return page

    # outbox: notifications and their deliveries ---------------------------------------

    claim_deliveries = _writes(
        sql_outbox.claim,
        """Lease due notifications of these channels to one worker; each counts as an
        attempt. Many workers never hold the same message at once.""",
    )

    finish_delivery = _writes(
        sql_outbox.finish,
        """Record one attempt's outcome under its claim (delivered, retrying after backoff,
        dead), with a history entry on the run; one transaction. "stale" if the claim
        was lost, and then nothing changes.""",
    )

    retry_delivery = _writes(
        sql_outbox.retry,
        """Make a dead or waiting notification due now with more attempts; one statement.""",
    )

    async def deliveries(
        self,
        *,
        status: str | None = None,
        run_id: str | None = None,
        channel: str | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[outbox.Delivery]:
        """Notifications newest first, each with its attempts; one snapshot."""
        found: list[outbox.Delivery] = await self._read(
            _op(
                sql_outbox.page,
                status=status,
                run_id=run_id,
                channel=channel,
                limit=limit,
                before=before,
            )
        )
        return found

    async def waiting_channels(self) -> list[str]:
        """Channels that undelivered notifications are for; reads."""
        found: list[str] = await self._read(_op(sql_outbox.waiting_channels))
        return found

    async def get_delivery(self, id: str) -> outbox.Delivery | None:
        found: outbox.Delivery | None = await self._read(_op(sql_outbox.get, id))
        return found

    reserve_channel_message = _writes(
        sql_outbox.reserve_message,
        """Take the place of a channel's message for one approval round and address unless
        taken (a conditional insert: of concurrent callers one gets it); the row.""",
    )

    record_channel_message = _writes(
        sql_outbox.record_message,
        """Record where a posted message is and what it shows, unless it shows a later
        state already; one statement.""",
    )

    async def posted_messages(
        self, *, channel: str, run_id: str, key: str, round: int
    ) -> list[sql_outbox.PostedMessage]:
        """The messages a channel posted for one approval round; reads."""
        found: list[sql_outbox.PostedMessage] = await self._read(
            _op(sql_outbox.posted_messages, channel=channel, run_id=run_id, key=key, round=round)
        )
        return found

    async def get_journals(self, run_ids: list[str]) -> dict[str, list[JournalEntry]]:
        """The journals of several runs at once (reads)."""
        found: dict[str, list[JournalEntry]] = await self._read(_op(sql.journals, run_ids))
        return found

    # housekeeping --------------------------------------------------------------------

    async def purgeable_runs(
        self, *, cutoff: float, workflow: str | None, after: str | None, limit: int
    ) -> list[str]:
        """Ids of finished runs (finished before `cutoff`, nothing left to deliver), in
        id order after `after`; reads."""
        found: list[str] = await self._read(
            _op(sql_purge.finished_before, cutoff, workflow, after, limit)
        )
        return found

    async def run_records(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Each run whole (run, journal, history, approvals, votes, audit chain), as an
        archive keeps it; reads one snapshot."""
        found: list[dict[str, Any]] = await self._read(_op(sql_purge.records, run_ids))
        return found

    purge_runs = _writes(
        sql_purge.delete_runs,
        """Remove the runs that still qualify and every row of theirs, each summed up on
        the `purged` audit chain; the ids removed.""",
    )

    async def expired_keys(
        self, *, idempotency_before: float, nonces_before: float
    ) -> tuple[int, int]:
        """How many idempotency records and used link nonces are past retention; reads."""
        found: tuple[int, int] = await self._read(
            _op(sql_purge.count_keys, idempotency_before, nonces_before)
        )
        return found

    purge_keys = _writes(
        sql_purge.delete_keys,
        """Remove idempotency records and used link nonces past retention; how many.""",
    )
