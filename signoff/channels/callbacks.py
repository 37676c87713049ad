"""Your own code as a channel: lifecycle callbacks delivered through the outbox, so they
run once per event (retried with backoff when they raise) and survive crashes; and a
console channel for local use.

```python
async def page_oncall(delivery):            # a signoff.outbox.Delivery
    await pager.alert(f"run {delivery.run_id} failed: {delivery.payload['data']['error']}")

Engine(url, notifications=[on_run_failed(page_oncall), on_approval_requested(print)])
```
A callback gets the delivery (its `event`, `run_id`, `key`, `payload` ...); it may be
sync (run in a thread) or async. Its name in the outbox is `callback:` + its qualified
name unless given. Like any delivery it is at least once: a worker killed while the
callback runs leaves it to run again, with the same `delivery.id` to dedupe on.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from signoff import errors, outbox
from signoff.channels.base import Channel, Message
from signoff.channels.routing import Route

Callback = Callable[[outbox.Delivery], Awaitable[Any] | Any]


class CallbackChannel(Channel):
    """Calls `fn(delivery)`; an exception is a failed attempt (retried)."""

    def __init__(self, name: str, fn: Callback) -> None:
        if not callable(fn):
            raise errors.InvalidArgument(f"callback {name!r} must be callable, not {fn!r:.60}")
        self.name = name
        self.fn = fn

    async def send(self, message: Message) -> None:
        if inspect.iscoroutinefunction(self.fn):
            await self.fn(message.delivery)
            return
        result = await asyncio.to_thread(self.fn, message.delivery)
        if inspect.isawaitable(result):
            await result


class ConsoleChannel(Channel):
    """Prints one line per event to standard error: see what would be sent, locally."""

    def __init__(self, name: str = "console") -> None:
        self.name = name

    async def send(self, message: Message) -> None:
        d = message.delivery
        summary = d.payload.get("data", {}).get("summary", "")
        where = f"{d.workflow} {d.run_id}" + (f" {d.key}" if d.key else "")
        print(f"[signoff] {d.event}: {where} {summary}".rstrip(), file=sys.stderr)


def on(
    events: str | Sequence[str],
    fn: Callback,
    *,
    name: str | None = None,
    workflows: Sequence[str] = ("*",),
    keys: Sequence[str] = ("*",),
    max_attempts: int = 8,
) -> Route:
    """A route that calls `fn` for `events` (of these workflows and approval keys)."""
    label = name or f"callback:{getattr(fn, '__qualname__', type(fn).__name__)}"
    chosen = [events] if isinstance(events, str) else list(events)
    return Route(
        CallbackChannel(label, fn),
        events=chosen,
        workflows=workflows,
        keys=keys,
        to=(),
        max_attempts=max_attempts,
    )


def on_approval_requested(fn: Callback, **kw: Any) -> Route:
    return on(outbox.APPROVAL_REQUESTED, fn, **kw)


def on_decided(fn: Callback, **kw: Any) -> Route:
    """Every way an approval closes: decided, timed out, expired."""
    closed = [outbox.APPROVAL_DECIDED, outbox.APPROVAL_TIMED_OUT, outbox.APPROVAL_EXPIRED]
    return on(closed, fn, **kw)


def on_escalated(fn: Callback, **kw: Any) -> Route:
    return on(outbox.APPROVAL_ESCALATED, fn, **kw)


def on_run_failed(fn: Callback, **kw: Any) -> Route:
    return on(outbox.RUN_FAILED, fn, **kw)


def on_run_completed(fn: Callback, **kw: Any) -> Route:
    return on(outbox.RUN_COMPLETED, fn, **kw)
