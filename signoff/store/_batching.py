"""Group commit's plumbing, shared by the SQLite and PostgreSQL stores.

Operations submitted during one turn of an event loop are gathered and handed over
together in its next turn (`Gathering`), so that the store can run them in one
transaction. Each caller awaits a future; the store settles it from an outcome, an
`(ok, value)` pair, so that no error is lost between the operation that raised it and
the caller waiting for it (`settle`, or `settle_on` from another thread).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")  # what is gathered: an operation, or a factory that makes it

Outcome = tuple[bool, Any]  # (True, result) or (False, the exception to raise)
Waiting = tuple[Item, "asyncio.Future[Any]"]  # an item and the future its outcome settles
Settling = tuple["asyncio.Future[Any]", bool, Any]  # a future and its outcome


class Gathering(Generic[Item]):
    """Collects the items submitted on each event loop during one turn of it, and calls
    `flush(loop, [(item, future), ...])` in that loop's next turn.

    Any number of loops (on their own threads) may submit: each has its own batch.
    """

    def __init__(
        self, flush: Callable[[asyncio.AbstractEventLoop, list[Waiting[Item]]], None]
    ) -> None:
        self._flush = flush
        self._pending: dict[asyncio.AbstractEventLoop, list[Waiting[Item]]] = {}

    def submit(
        self, item: Item, loop: asyncio.AbstractEventLoop | None = None
    ) -> asyncio.Future[Any]:
        """Add `item` to the batch of `loop` (the running one, by default: call from its
        thread); the future its outcome settles."""
        loop = asyncio.get_running_loop() if loop is None else loop
        future: asyncio.Future[Any] = loop.create_future()
        self._batch(loop).append((item, future))
        return future

    def add(self, loop: asyncio.AbstractEventLoop, items: list[Waiting[Item]]) -> None:
        """Put back, from `loop`'s thread, part of a batch being flushed: it goes in the
        next turn's batch, ahead of what is submitted later."""
        self._batch(loop).extend(items)

    def elsewhere(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether a loop other than `loop` has a batch waiting for its turn."""
        pending = self._pending  # len and `in`: safe while other threads add and pop
        return len(pending) > (loop in pending)

    def _batch(self, loop: asyncio.AbstractEventLoop) -> list[Waiting[Item]]:
        """`loop`'s next batch; the first item of one asks the loop for a turn to flush it."""
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._turn, loop)
        return pending

    def _turn(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush(loop, self._pending.pop(loop, []))


def settle(items: Iterable[Settling]) -> None:
    """Settle each future with its outcome; one whose caller gave up is left alone."""
    for future, ok, value in items:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def settle_on(loop: asyncio.AbstractEventLoop, items: list[Settling]) -> None:
    """`settle`, from another thread, on the loop the futures belong to."""
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
        loop.call_soon_threadsafe(settle, items)
