"""The worker loop: claim runnable runs, fire due timers, keep leases alive, drain on stop.

Runs started or woken in this process are handed to the local worker directly (already
claimed in the same transaction); runs made runnable by other processes are found by
polling. A worker only claims runs of workflows it has registered. A waiting run holds
nothing here: it is not in any queue, task or dictionary of the worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import os
import socket
import uuid
from collections.abc import Callable

from signoff import clock, models, preflight, runner
from signoff.store.base import Claim, Store

log = logging.getLogger(__name__)

RECHECK_INTERVAL = 60.0  # seconds between looks at blocked runs (the first at start-up)
# Due timers are fired in transactions of at most TIMER_BATCH, and the runs they wake take
# at most a TIMER_SHARE of the worker's slots while other runs (decided, signalled,
# started) execute here: a storm of deadlines falling together keeps each transaction
# short and leaves the worker's loop free enough for decisions to other runs. While only
# timer-woken runs execute, nobody waits on them: timers fire TIMER_BATCH_IDLE to a
# transaction and their runs may take every slot but a TIMER_SHARE, kept free for the
# next decision (so that workflows waking from a sleep into long I/O are not held to a
# sixteenth of the slots). While more are due, a run that ends fires the next ones.
TIMER_BATCH = 32
TIMER_BATCH_IDLE = 128
TIMER_SHARE = 1 / 16
TIMER_CALM = 1.0  # seconds without other runs before timers take more than their share


async def sync_clock(store: Store, clock_: clock.Clock) -> None:
    """Correct a `DatabaseClock` to the database's time when it is due (else nothing).
    Three readings; the one with the shortest round trip counts (a busy event loop or a
    first connection would otherwise pass for skew)."""
    if not isinstance(clock_, clock.DatabaseClock) or not clock_.due():
        return
    readings = []
    for _ in range(3):
        before = clock_.local.time()
        database = await store.database_time()
        readings.append((clock_.local.time() - before, before, database))
    _, before, database = min(readings)
    was = clock_.offset
    clock_.measured(before, database, before + min(readings)[0])
    if abs(clock_.offset) > 1.0 and abs(clock_.offset - was) > 0.5:
        log.warning(
            "this machine's clock is %.1fs off the database's; using the database's",
            -clock_.offset,
            extra={"action": "clock_skew", "offset": clock_.offset},
        )


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Executes runs for one engine; any number of workers may share a database."""

    def __init__(
        self,
        *,
        store: Store,
        clock_: clock.Clock,
        registry: dict[str, runner.WorkflowDef],
        settings: runner.Settings,
        concurrency: int,
        poll_interval: float,
        on_settled: Callable[[str, str], None],
    ) -> None:
        self.id = settings.owner
        self._store = store
        self._clock = clock_
        self._registry = registry
        self._settings = settings
        self._concurrency = concurrency
        self._poll = poll_interval
        self._on_settled = on_settled
        self._queue: collections.deque[Claim] = collections.deque()
        self._active: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        # held while a poll fires what is due at the time it read, so that a test's
        # `fire_due_timers` and the worker never fire the same timer under each other
        self.timers = asyncio.Lock()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._giving_back: set[asyncio.Task[None]] = set()
        # blocked runs this code was found not to replay, by id: when they were blocked
        self._unreplayable: dict[str, datetime.datetime] = {}
        self._recheck_at = 0.0  # loop time of the next look at blocked runs
        self._timer_runs: set[str] = set()  # runs woken by a timer here, until they settle
        self._timer_slots = max(1, int(concurrency * TIMER_SHARE))
        self._more_due = False  # the last firing left due timers behind
        self._others_at = -TIMER_CALM  # loop time another run than a timer's was taken

    @property
    def lease_until(self) -> float:
        return self._clock.time() + self._settings.lease

    def handles(self, workflow: str) -> bool:
        return not self._stopping and workflow in self._registry

    async def start(self) -> None:
        await self._store.register_workflows(sorted(self._registry), self._clock.time())
        self._tasks = [
            asyncio.create_task(self._loop(), name="signoff-worker"),
            asyncio.create_task(self._heartbeat(), name="signoff-heartbeat"),
        ]
        self._store.add_wakeup_listener(self.wake)  # NOTIFY on PostgreSQL; else we poll
        log.info("worker started", extra={"action": "worker_started", "worker": self.id})

    def submit(self, claim: Claim) -> None:
        """Take a run already claimed for this worker."""
        if claim.run.id not in self._timer_runs:
            self._others_at = asyncio.get_running_loop().time()
        self._queue.append(claim)
        self._pump()

    def wake(self) -> None:
        self._wake.set()

    def _pump(self) -> None:
        while self._queue and len(self._active) < self._concurrency and not self._stopping:
            claim = self._queue.popleft()
            task = asyncio.create_task(self._execute(claim))
            self._active[claim.run.id] = task

    async def _execute(self, claim: Claim) -> None:
        run_id = claim.run.id
        outcome = "abandoned"
        try:
            wf = self._registry[claim.run.workflow].for_version(claim.run.version)
            outcome = await runner.execute_observed(
                claim, wf, self._store, self._clock, self._settings
            )
        except asyncio.CancelledError:
            raise
        except Exception:  # store down mid-run: hand the run back to be claimed afresh
            log.exception(
                "run %s: execution crashed; handing it back",
                run_id,
                extra={"action": "run_crashed", "run_id": run_id},
            )
            task = asyncio.create_task(self._give_back(run_id))
            self._giving_back.add(task)
            task.add_done_callback(self._giving_back.discard)
        finally:
            self._active.pop(run_id, None)
            self._timer_runs.discard(run_id)
            if self._more_due:  # room for due timers came free: fire the next ones
                self._wake.set()
            self._on_settled(run_id, outcome)
            self._pump()

    async def _give_back(self, run_id: str) -> None:
        """Release a run whose execution crashed (our heartbeat would otherwise keep its
        lease alive forever), retrying with backoff while the store is down."""
        delay = 0.05
        while not self._stopping and run_id not in self._active:
            try:
                await self._store.release(owner=self.id, run_ids=[run_id], now=self._clock.time())
                self.wake()
                return
            except Exception as exc:
                log.warning(
                    "cannot give back run %s (%s); retrying in %.2fs",
                    run_id,
                    exc,
                    delay,
                    extra={"action": "release_retry", "run_id": run_id},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _loop(self) -> None:
        names = sorted(self._registry)
        failures = 0
        while not self._stopping:
            try:
                await self._tick(names)
                if asyncio.get_running_loop().time() >= self._recheck_at:
                    await self.recheck_blocked()
                failures = 0
            except Exception:
                failures += 1
                pause = min(2.0, max(self._poll, 0.01) * 2**failures)
                log.exception(
                    "worker poll failed; retrying in %.2fs",
                    pause,
                    extra={"action": "poll_failed", "failures": failures},
                )
                await asyncio.sleep(pause)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _tick(self, names: list[str]) -> None:
        free = self._concurrency - self._busy()
        if free <= 0:
            return
        await sync_clock(self._store, self._clock)
        # the time is read before the lock: a poll queued behind `fire_due_timers` must
        # not fire, with the time the test just moved on, what that call is about to
        now = self._clock.time()
        async with self.timers:
            due, runnable = await self._store.poll(workflows=names, now=now, owner=self.id)
            self._more_due = due
            if due:
                await self._fire_timers(now, free)
                free = self._concurrency - self._busy()
        if free > 0 and runnable:
            for claim in await self._store.claim_runnable(
                owner=self.id,
                workflows=names,
                limit=free,
                now=now,
                lease_until=self.lease_until,
            ):
                self.submit(claim)

    async def _fire_timers(self, now: float, free: int) -> None:
        """Fire due timers, a batch per transaction, as far as the timer slots allow;
        `_more_due` says whether some may be left (the next tick fires them)."""
        while True:
            room, batch = self._timer_room()
            limit = min(free, batch, room)
            if limit <= 0:
                return
            claims = await self._store.fire_timers(
                now=now, limit=limit, claim_for=self.id, lease_until=self.lease_until
            )
            for claim in claims:
                if claim.run.workflow in self._registry:
                    self._timer_runs.add(claim.run.id)
                await self._route(claim)
            if len(claims) < limit:  # all that were due at `now` are fired
                self._more_due = False
                return
            free = self._concurrency - self._busy()

    def _busy(self) -> int:
        """Runs executing here or queued to."""
        return len(self._active) + len(self._queue)

    def _timer_room(self) -> tuple[int, int]:
        """How many more timer-woken runs may start now, and how many timers to fire in
        one transaction: a share and short batches while other runs execute here (or
        did within TIMER_CALM), all slots but a share and long batches while none does."""
        others = self._busy() - len(self._timer_runs)
        calm = asyncio.get_running_loop().time() - self._others_at >= TIMER_CALM
        if others > 0 or not calm:  # decisions come one after another: keep the share
            return self._timer_slots - len(self._timer_runs), TIMER_BATCH
        slots = max(self._timer_slots, self._concurrency - self._timer_slots)
        return slots - len(self._timer_runs), TIMER_BATCH_IDLE

    async def recheck_blocked(self, page_size: int = 500) -> int:
        """Resume the blocked runs of our workflows that this code replays (a deploy
        fixed them): each is unblocked and claimed here. A run is replayed once per
        block, read-only; one this worker blocked itself is not looked at (its code
        did not replay it). Returns how many were resumed."""
        self._recheck_at = asyncio.get_running_loop().time() + RECHECK_INTERVAL
        resumed, seen = 0, set[str]()
        cursor: tuple[float, str] | None = None
        mark: tuple[datetime.datetime, str] | None = None
        while not self._stopping:
            found = await self._store.list_runs(
                status=models.RunStatus.BLOCKED.value, limit=page_size, before=cursor
            )
            # a stored time may hold more than a datetime's microseconds: ask from just
            # past the mark, keep what is strictly older than it
            page = [run for run in found if mark is None or (run.created_at, run.id) < mark]
            fresh = [run for run in page if self._is_fresh(run)]
            seen.update(run.id for run in page)
            journals = await self._store.get_journals([run.id for run in fresh])
            for run in fresh:
                wf = self._registry[run.workflow].for_version(run.version)
                if await preflight.check_run(wf, run, journals[run.id]) is not None:
                    self._unreplayable[run.id] = run.updated_at
                    continue
                resumed += await self._unblock(run.id)
            if len(found) < page_size or not page:
                break
            mark = (page[-1].created_at, page[-1].id)
            cursor = (page[-1].created_at.timestamp() + 1e-6, "\U0010ffff")
        self._unreplayable = {k: v for k, v in self._unreplayable.items() if k in seen}
        return resumed

    def _is_fresh(self, run: models.Run) -> bool:
        """A blocked run of ours not yet looked at in this state, blocked by another worker."""
        return (
            run.workflow in self._registry
            and self._unreplayable.get(run.id) != run.updated_at
            and (run.error or {}).get("worker") != self.id
        )

    async def _unblock(self, run_id: str) -> int:
        outcome, claim = await self._store.unblock_run(
            run_id=run_id,
            by=None,
            now=self._clock.time(),
            claim_for=self.id,
            lease_until=self.lease_until,
            worker=self.id,
        )
        if outcome != "ok":
            return 0  # resumed or cancelled by someone else meanwhile
        log.info(
            "run %s replays with this code: unblocked",
            run_id,
            extra={"action": "run_unblocked", "run_id": run_id},
        )
        if claim is not None:
            self.submit(claim)
        return 1

    async def _route(self, claim: Claim) -> None:
        if claim.run.workflow in self._registry:
            self.submit(claim)
        else:  # timer fired for a workflow this worker does not know: give it back
            await self._store.release(owner=self.id, run_ids=[claim.run.id], now=self._clock.time())

    async def _heartbeat(self) -> None:
        interval = max(self._settings.lease / 3, 0.05)
        while not self._stopping:
            await asyncio.sleep(interval)
            try:
                await self._store.heartbeat(owner=self.id, lease_until=self.lease_until)
            except Exception:
                log.exception("lease heartbeat failed", extra={"action": "heartbeat_failed"})

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Stop claiming, let running executions reach a wait or the end, give back the rest."""
        self._stopping = True
        self._store.remove_wakeup_listener(self.wake)
        self._wake.set()
        for task in [*self._tasks, *self._giving_back]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._giving_back, return_exceptions=True)
        queued = [c.run.id for c in self._queue]
        self._queue.clear()
        cut: list[str] = []
        if self._active:
            tasks = dict(self._active)
            _, pending = await asyncio.wait(list(tasks.values()), timeout=drain_timeout)
            cut = [run_id for run_id, task in tasks.items() if task in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        held = queued + cut
        if held:
            await self._store.release(owner=self.id, run_ids=held, now=self._clock.time())
        log.info("worker stopped", extra={"action": "worker_stopped", "worker": self.id})
