"""The live stream: server-sent events read from the database's history.

Every history row has an increasing id; it is the SSE event `id`, so a client that
reconnects with `Last-Event-ID` gets what it missed from the database. One `Hub` per
process polls the history tail (and wakes early on the store's wake-up hook) and fans
the rows out to its subscribers, so a thousand open streams cost one query per tick.
Several API processes each read the same table: events never live only in memory.

History types map to stream events as follows; other types are not streamed:

| history                                          | SSE event         |
|--------------------------------------------------|-------------------|
| step_completed                                   | step_completed    |
| approval_requested                               | waiting_for_input |
| approval_voted                                   | vote_recorded     |
| approval_escalated                               | input_escalated   |
| approval_decided, approval_expired,              | input_resolved    |
| approval_timed_out, approval_withdrawn           |                   |
| waiting_for_signal, waiting_for_event,           | wait_started      |
| sleep_started                                    |                   |
| signal_received, event_received, timer_fired,    | wait_ended        |
| signal_timed_out, event_timed_out                |                   |
| run_taken_over                                   | run_taken_over    |
| run_completed                                    | run_completed     |
| run_failed                                       | run_failed        |
| run_cancelled                                    | run_cancelled     |
| run_blocked                                      | run_blocked       |
| run_unblocked                                    | run_unblocked     |

So every wait a run enters and leaves is on the stream, whichever way it ends (a person,
a timeout rule, a withdrawal, a signal, an event, a timer). A blocked run (its replay no
longer matches its journal) does not end its stream: it resumes when code that replays
it is deployed, or is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from signoff import models
from signoff.engine import Engine

log = logging.getLogger(__name__)
Allowed = Callable[[], Awaitable[bool]]

EVENT_NAMES = {
    "step_completed": "step_completed",
    "approval_requested": "waiting_for_input",
    "approval_voted": "vote_recorded",
    "approval_escalated": "input_escalated",
    "approval_decided": "input_resolved",
    "approval_expired": "input_resolved",
    "approval_timed_out": "input_resolved",
    "approval_withdrawn": "input_resolved",
    "waiting_for_signal": "wait_started",
    "waiting_for_event": "wait_started",
    "sleep_started": "wait_started",
    "signal_received": "wait_ended",
    "event_received": "wait_ended",
    "timer_fired": "wait_ended",
    "signal_timed_out": "wait_ended",
    "event_timed_out": "wait_ended",
    "run_taken_over": "run_taken_over",
    "run_completed": "run_completed",
    "run_failed": "run_failed",
    "run_cancelled": "run_cancelled",
    "run_blocked": "run_blocked",
    "run_unblocked": "run_unblocked",
}
TERMINAL = frozenset({"run_completed", "run_failed", "run_cancelled"})
QUEUE_LIMIT = 10_000
PAGE = 1000


def format_event(event: models.HistoryEntry) -> str | None:
    """The SSE frame of a history entry, or None when its type is not streamed."""
    name = EVENT_NAMES.get(event.type)
    if name is None:
        return None
    data = {
        "id": event.id,
        "run_id": event.run_id,
        "type": event.type,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "data": event.data,
    }
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.id}\nevent: {name}\ndata: {payload}\n\n"


def parse_last_event_id(value: str | None) -> int | None:
    """The cursor from `Last-Event-ID`; ValueError for anything but a whole number."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 18:
        raise ValueError(value)
    return int(text)


@dataclass(eq=False)
class Subscriber:
    run_id: str | None
    start: int  # the hub's cursor when it subscribed: later events come by queue
    queue: asyncio.Queue[models.HistoryEntry] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT)
    )
    overflowed: bool = False


class Hub:
    """Polls the history tail once per tick for every subscriber of this process.

    `gap_wait`: on PostgreSQL an id can become visible after a higher one (transactions
    commit out of order); the hub holds at a gap for up to this long before it moves on
    (a rolled-back transaction leaves a gap for good). SQLite never leaves gaps."""

    def __init__(self, engine: Engine, *, poll_interval: float = 0.05, gap_wait: float = 1.0):
        self.engine = engine
        self.poll_interval = poll_interval
        self.gap_wait = gap_wait
        self.cursor = 0
        # who hears what: a run's streams by its id, the streams of every run apart, so
        # that handing an event out costs its own listeners, not every open stream
        self._by_run: dict[str, set[Subscriber]] = {}
        self._everything: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._gap_since: float | None = None
        self._listening = False

    @property
    def subscribers(self) -> set[Subscriber]:
        """Every open stream of this process."""
        return self._everything.union(*self._by_run.values())

    def _listened(self) -> bool:
        return bool(self._everything or self._by_run)

    async def subscribe(self, run_id: str | None) -> Subscriber:
        if not self._listened():
            self.cursor = max(self.cursor, await self.engine.access.last_history_id())
        sub = Subscriber(run_id, self.cursor)
        if run_id is None:
            self._everything.add(sub)
        else:
            self._by_run.setdefault(run_id, set()).add(sub)
        self._ensure_running()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub.run_id is None:
            self._everything.discard(sub)
            return
        listeners = self._by_run.get(sub.run_id)
        if listeners is not None:
            listeners.discard(sub)
            if not listeners:
                del self._by_run[sub.run_id]

    def wake(self) -> None:
        self._wake.set()

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        if not self._listening:
            self.engine.store.add_wakeup_listener(self.wake)
            self._listening = True

    async def close(self) -> None:
        if self._listening:
            self.engine.store.remove_wakeup_listener(self.wake)
            self._listening = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            if self._listened():
                try:
                    more = await self.poll_once()
                except Exception:  # a store outage: keep the streams, try again
                    log.warning("stream poll failed", exc_info=True, extra={"action": "poll"})
                    more = False
                if more:
                    continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()

    async def poll_once(self) -> bool:
        """Read the tail once and hand new events out; True if a full page came."""
        events = await self.engine.access.history_since(self.cursor, limit=PAGE)
        loop = asyncio.get_running_loop()
        for event in events:
            if event.id != self.cursor + 1:
                if self._gap_since is None:
                    self._gap_since = loop.time()
                if loop.time() - self._gap_since < self.gap_wait:
                    return False
            self._gap_since = None
            self.cursor = event.id
            self._dispatch(event)
        return len(events) == PAGE

    def _dispatch(self, event: models.HistoryEntry) -> None:
        if event.type not in EVENT_NAMES:
            return
        listeners = [*self._by_run.get(event.run_id, ()), *self._everything]
        for sub in listeners:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:  # a stalled reader: end its stream; it resumes by id
                sub.overflowed = True
                self.unsubscribe(sub)


class _Gate:
    """Re-checks, at most every `every` seconds, that the stream's caller may still read
    (a revoked token's stream ends within that time, even while nothing happens)."""

    def __init__(self, allowed: Allowed | None, every: float) -> None:
        self.allowed, self.every = allowed, every
        self.due = asyncio.get_running_loop().time() + every

    def wait(self, heartbeat: float) -> float:
        if self.allowed is None:
            return heartbeat
        return max(0.0, min(heartbeat, self.due - asyncio.get_running_loop().time()))

    async def closed(self) -> bool:
        now = asyncio.get_running_loop().time()
        if self.allowed is None or now < self.due:
            return False
        self.due = now + self.every
        return not await self.allowed()


async def events(
    hub: Hub,
    *,
    run_id: str | None = None,
    after: int | None = None,
    heartbeat: float = 15.0,
    allowed: Allowed | None = None,
    recheck: float = 2.0,
) -> AsyncIterator[str]:
    """SSE frames: first what the database holds after `after` (a per-run stream without
    a cursor starts at the run's beginning; the inbox at now), then live events. A
    per-run stream ends after the run's last event; any stream ends once `allowed()`
    (asked every `recheck` seconds) says no."""
    gate = _Gate(allowed, recheck)
    sub = await hub.subscribe(run_id)
    try:
        last = after if after is not None else (0 if run_id is not None else sub.start)
        while last < sub.start:  # catch up from the database
            if await gate.closed():
                return
            page = await hub.engine.access.history_since(last, run_id=run_id, limit=PAGE)
            page = [e for e in page if e.id <= sub.start]
            if not page:
                break
            for event in page:
                last = event.id
                frame = format_event(event)
                if frame is not None:
                    yield frame
                    if run_id is not None and event.type in TERMINAL:
                        return
        if run_id is not None and (await hub.engine.get_run(run_id)).status.finished:
            async for frame in _rest_of_run(hub.engine, run_id, last):
                yield frame
            return
        yield ": connected\n\n"
        loop = asyncio.get_running_loop()
        beat = loop.time() + heartbeat
        while not sub.overflowed or not sub.queue.empty():
            if await gate.closed():
                return
            try:
                event = await asyncio.wait_for(sub.queue.get(), gate.wait(beat - loop.time()))
            except TimeoutError:
                if loop.time() >= beat:
                    beat = loop.time() + heartbeat
                    yield ": keep-alive\n\n"
                continue
            if event.id <= last:
                continue
            last = event.id
            frame = format_event(event)
            if frame is not None:
                yield frame
                if run_id is not None and event.type in TERMINAL:
                    return
    finally:
        hub.unsubscribe(sub)


async def _rest_of_run(engine: Engine, run_id: str, last: int) -> AsyncIterator[str]:
    """Everything after `last` of a run that has finished (its history is complete)."""
    while True:
        page = await engine.access.history_since(last, run_id=run_id, limit=PAGE)
        for event in page:
            last = event.id
            frame = format_event(event)
            if frame is not None:
                yield frame
        if len(page) < PAGE:
            return
