"""The live stream: server-sent events read from the database's history.

Every history row has an increasing id; it is the SSE event `id`, so a client that
reconnects with `Last-Event-ID` gets what it missed from the database. One `Hub` per
process reads the history tail and fans the rows out to its subscribers, so a thousand
open streams cost one query per read, not one each. It reads as soon as this process
commits a write (the store's commit hook), as soon as another process makes a run
runnable (its wake-up hook, where the backend has one), and at least every
`poll_interval`; commits that land while it reads are taken together by the next read.
Several API processes each read the same table: events never live only in memory.

Handing an event out costs the streams that may see it, not every open stream: a run's
streams are found by its id, each event's frame is formatted once and shared by every
stream that sends it, and a `Fanout` (the web inbox's, inbox/live.py) decides once per
event which of its streams get it.

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
import collections
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

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
    return frame(event.id, name, data)


def frame(event_id: int, name: str, data: object) -> str:
    """One SSE frame: `id`, `event` and compact JSON `data`."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event_id}\nevent: {name}\ndata: {payload}\n\n"


def parse_last_event_id(value: str | None) -> int | None:
    """The cursor from `Last-Event-ID`; ValueError for anything but a whole number."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 18:
        raise ValueError(value)
    return int(text)


@dataclass(frozen=True, slots=True)
class Item:
    """An event as streams send it: `frame` is formatted once and shared by every stream
    that gets it; `ends_run` when it is its run's last event."""

    id: int
    run_id: str
    frame: str
    ends_run: bool = False

    @classmethod
    def of(cls, event: models.HistoryEntry) -> Item | None:
        """The item of a streamed history entry (None for the types not streamed)."""
        text = format_event(event)
        if text is None:
            return None
        return cls(event.id, event.run_id, text, event.type in TERMINAL)


@dataclass(eq=False)
class Subscriber:
    """One open stream: a run's (`run_id`), a `fanout`'s (its `viewer` says whose), or
    every run's. `start` is the hub's cursor when it subscribed: later events come by
    `put` (at most `limit` waiting), earlier ones from the database."""

    run_id: str | None
    start: int
    fanout: Fanout | None = None
    viewer: object = None
    limit: int = QUEUE_LIMIT
    overflowed: bool = False
    waiting: collections.deque[Item] = field(default_factory=collections.deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, item: Item) -> bool:
        """Queue `item`; False (and marked overflowed) when the reader has stalled."""
        if len(self.waiting) >= self.limit:
            self.overflowed = True
            return False
        self.waiting.append(item)
        self.ready.set()
        return True

    def take(self) -> list[Item]:
        """Every queued item, oldest first."""
        items = list(self.waiting)
        self.waiting.clear()
        self.ready.clear()
        return items


class Fanout(Protocol):
    """A family of streams whose events are chosen per viewer (the web inbox's): the hub
    hands it each read's events once, and it puts each event in the queues of the
    streams that may see it, looking up once per event what that takes."""

    def add(self, sub: Subscriber) -> None:
        """Start handing events to `sub` (whose `viewer` says who reads it)."""

    def remove(self, sub: Subscriber) -> None:
        """Stop handing events to `sub`."""

    def listening(self) -> bool:
        """Whether any stream of the family is open."""

    async def deliver(self, events: Sequence[models.HistoryEntry]) -> list[Subscriber]:
        """Queue `events` (in order) for the streams that may see them; returns the
        streams that overflowed."""

    async def catch_up(self, sub: Subscriber, events: Sequence[models.HistoryEntry]) -> list[Item]:
        """What `sub` gets of `events` read back from the database (a resumed stream)."""


class Hub:
    """Reads the history tail for every subscriber of this process and hands each event
    to the streams that may see it.

    `gap_wait`: on PostgreSQL an id can become visible after a higher one (transactions
    commit out of order); the hub holds at a gap for up to this long before it moves on
    (a rolled-back transaction leaves a gap for good). SQLite never leaves gaps."""

    def __init__(self, engine: Engine, *, poll_interval: float = 0.05, gap_wait: float = 1.0):
        self.engine = engine
        self.poll_interval = poll_interval
        self.gap_wait = gap_wait
        self.cursor = 0
        self._open: set[Subscriber] = set()
        # who hears what: a run's streams by its id, the streams of every run apart, and
        # the fanouts' streams by their fanout, so that handing an event out costs its
        # own listeners, not every open stream
        self._by_run: dict[str, set[Subscriber]] = {}
        self._everything: set[Subscriber] = set()
        self._fanouts: dict[Fanout, int] = {}  # with how many streams each
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._gap_since: float | None = None
        self._listening = False

    @property
    def subscribers(self) -> set[Subscriber]:
        """Every open stream of this process."""
        return set(self._open)

    async def subscribe(
        self, run_id: str | None, *, fanout: Fanout | None = None, viewer: object = None
    ) -> Subscriber:
        """Open a stream: of run `run_id`; of `fanout` for `viewer`; else of every run."""
        if not self._open:
            self.cursor = max(self.cursor, await self.engine.access.last_history_id())
        sub = Subscriber(run_id, self.cursor, fanout, viewer)
        self._open.add(sub)
        if fanout is not None:
            fanout.add(sub)
            self._fanouts[fanout] = self._fanouts.get(fanout, 0) + 1
        elif run_id is None:
            self._everything.add(sub)
        else:
            self._by_run.setdefault(run_id, set()).add(sub)
        self._ensure_running()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub not in self._open:
            return
        self._open.discard(sub)
        if sub.fanout is not None:
            sub.fanout.remove(sub)
            left = self._fanouts.pop(sub.fanout) - 1
            if left:
                self._fanouts[sub.fanout] = left
        elif sub.run_id is None:
            self._everything.discard(sub)
        else:
            listeners = self._by_run.get(sub.run_id)
            if listeners is not None:
                listeners.discard(sub)
                if not listeners:
                    del self._by_run[sub.run_id]

    def wake(self) -> None:
        """Read the tail soon (several calls before the read make one read)."""
        self._wake.set()

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        if not self._listening:
            self.engine.store.add_wakeup_listener(self.wake)
            self.engine.store.add_commit_listener(self.wake)
            self._listening = True

    async def close(self) -> None:
        if self._listening:
            self.engine.store.remove_wakeup_listener(self.wake)
            self.engine.store.remove_commit_listener(self.wake)
            self._listening = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            if self._open:
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
        self._wake.clear()  # what commits from here on needs another read
        events = await self.engine.access.history_since(self.cursor, limit=PAGE)
        loop = asyncio.get_running_loop()
        taken: list[models.HistoryEntry] = []
        held = False
        for event in events:
            if event.id != self.cursor + 1:
                if self._gap_since is None:
                    self._gap_since = loop.time()
                if loop.time() - self._gap_since < self.gap_wait:
                    held = True
                    break
            self._gap_since = None
            self.cursor = event.id
            if event.type in EVENT_NAMES:
                self._dispatch(event)
                taken.append(event)
        if taken and self._fanouts:
            await self._deliver(taken)
        return len(events) == PAGE and not held

    def _dispatch(self, event: models.HistoryEntry) -> None:
        """Hand `event` to its run's streams and to the streams of every run."""
        own = self._by_run.get(event.run_id)
        if not own and not self._everything:
            return
        item = Item.of(event)
        if item is None:
            return
        stalled = [s for s in (*(own or ()), *self._everything) if not s.put(item)]
        for sub in stalled:  # a stalled reader: end its stream; it resumes by id
            self.unsubscribe(sub)

    async def _deliver(self, events: list[models.HistoryEntry]) -> None:
        for fanout in list(self._fanouts):
            try:
                stalled = await fanout.deliver(events)
            except Exception:  # its streams missed these: end them, they resume by id
                log.warning("stream fanout failed", exc_info=True, extra={"action": "poll"})
                stalled = [s for s in self._open if s.fanout is fanout]
                for sub in stalled:
                    sub.overflowed = True
            for sub in stalled:
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
    fanout: Fanout | None = None,
    viewer: object = None,
) -> AsyncIterator[str]:
    """SSE frames: first what the database holds after `after` (a per-run stream without
    a cursor starts at the run's beginning; the others at now), then live events. A
    per-run stream ends after the run's last event; any stream ends once `allowed()`
    (asked every `recheck` seconds) says no. With `fanout`, the stream is that family's,
    for `viewer`, and carries what the fanout gives that viewer."""
    gate = _Gate(allowed, recheck)
    sub = await hub.subscribe(run_id, fanout=fanout, viewer=viewer)
    try:
        last = after if after is not None else (0 if run_id is not None else sub.start)
        while last < sub.start:  # catch up from the database
            if await gate.closed():
                return
            page = await hub.engine.access.history_since(last, run_id=run_id, limit=PAGE)
            page = [e for e in page if e.id <= sub.start]
            if not page:
                break
            last = page[-1].id
            if fanout is not None:
                items = await fanout.catch_up(sub, page)
            else:
                items = [i for i in map(Item.of, page) if i is not None]
            for item in items:
                yield item.frame
                if run_id is not None and item.ends_run:
                    return
        if run_id is not None and (await hub.engine.get_run(run_id)).status.finished:
            async for text in _rest_of_run(hub.engine, run_id, last):
                yield text
            return
        yield ": connected\n\n"
        async for text in _live(sub, gate, last, heartbeat):
            yield text
    finally:
        hub.unsubscribe(sub)


async def _live(sub: Subscriber, gate: _Gate, last: int, heartbeat: float) -> AsyncIterator[str]:
    """The queued events after `last`, those waiting together sent as one chunk (one
    write to the socket), with a keep-alive comment every `heartbeat` seconds of quiet."""
    loop = asyncio.get_running_loop()
    beat = loop.time() + heartbeat
    while not sub.overflowed or sub.waiting:
        if await gate.closed():
            return
        if not sub.waiting:
            try:
                async with asyncio.timeout(gate.wait(beat - loop.time())):
                    await sub.ready.wait()
            except TimeoutError:
                if loop.time() >= beat:
                    beat = loop.time() + heartbeat
                    yield ": keep-alive\n\n"
                continue
        chunk: list[str] = []
        for item in sub.take():
            if item.id <= last:
                continue
            last = item.id
            chunk.append(item.frame)
            if sub.run_id is not None and item.ends_run:
                yield "".join(chunk)
                return
        if chunk:
            yield "".join(chunk)


async def _rest_of_run(engine: Engine, run_id: str, last: int) -> AsyncIterator[str]:
    """Everything after `last` of a run that has finished (its history is complete)."""
    while True:
        page = await engine.access.history_since(last, run_id=run_id, limit=PAGE)
        for event in page:
            last = event.id
            text = format_event(event)
            if text is not None:
                yield text
        if len(page) < PAGE:
            return
