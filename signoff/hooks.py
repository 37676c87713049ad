"""Middleware hooks: your code around steps, waits and the end of runs, in the worker.

```python
@engine.hooks.before_step
async def audit(step: signoff.hooks.StepInfo) -> None:
    print("starting", step.run_id, step.step)
```
Register on the engine (`before_step`, `after_step`, `on_wait`, `on_complete`, `on_fail`;
each returns the function, so it works as a decorator). A hook takes one argument, the
event's record, and may be sync or async. Hooks run in the worker that executes the run,
in the order they were registered, only for what happens in this execution:

- `before_step`: before the first attempt of a step that is not in the journal yet,
  inside the step's span and log context. A step already journaled is returned from the
  journal on replay, and no hook fires for it.
- `after_step`: once the step's outcome (result, or failure after its last attempt) is
  journaled. A step cut off by a crash before that runs again, and so do its hooks: like
  steps, hooks are at least once.
- `on_wait`: once a wait (approval, signal, event, sleep) is first written down, whether
  it parks the run or finds its answer at once (`answered`). Not when replay passes a
  wait again.
- `on_complete`, `on_fail`: once the run's end is recorded.

A hook that raises is logged (`action="hook_failed"`) and otherwise ignored: it never
fails, retries or stops the run, and the hooks after it still run. Keep hooks quick; the
run waits for them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")
Hook = Callable[[E], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class StepInfo:
    """A step about to run (`before_step`)."""

    run_id: str
    workflow: str
    step: str  # the step's name
    seq: int  # its position in the run's journal


@dataclass(frozen=True, slots=True)
class StepDone:
    """A step whose outcome is journaled (`after_step`): `result` (JSON-shaped, as
    journaled) when `ok`, else `error` (`type`, `message`)."""

    run_id: str
    workflow: str
    step: str
    seq: int
    ok: bool
    attempts: int
    duration: float  # seconds, from before the first attempt to the journal write
    result: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class WaitInfo:
    """A wait just written down (`on_wait`): `kind` is approval, signal, event or sleep;
    `name` the approval key, signal name or event key. `answered`: its answer was there
    already (a signal sent before), so the run goes on."""

    run_id: str
    workflow: str
    kind: str
    name: str
    seq: int
    answered: bool
    deadline: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunDone:
    """A run whose end is recorded (`on_complete`, `on_fail`)."""

    run_id: str
    workflow: str
    status: str  # completed or failed
    result: Any = None
    error: dict[str, Any] | None = None


class _Chain(Generic[E]):
    def __init__(self, name: str) -> None:
        self.name = name
        self.fns: list[Hook[E]] = []

    async def fire(self, event: E, run_id: str) -> None:
        for fn in list(self.fns):
            try:
                out = fn(event)
                if inspect.isawaitable(out):
                    await out
            except Exception:
                log.exception(
                    "hook %s %s failed; the run goes on",
                    self.name,
                    getattr(fn, "__qualname__", fn),
                    extra={"action": "hook_failed", "hook": self.name, "run_id": run_id},
                )


class Hooks:
    """The hooks of one engine (`engine.hooks`)."""

    def __init__(self) -> None:
        self._before_step: _Chain[StepInfo] = _Chain("before_step")
        self._after_step: _Chain[StepDone] = _Chain("after_step")
        self._on_wait: _Chain[WaitInfo] = _Chain("on_wait")
        self._on_complete: _Chain[RunDone] = _Chain("on_complete")
        self._on_fail: _Chain[RunDone] = _Chain("on_fail")
        # by name, for `any_for` (asked several times per step and wait)
        self._by_name: dict[str, _Chain[Any]] = {c.name: c for c in self._chains()}

    def before_step(self, fn: Hook[StepInfo]) -> Hook[StepInfo]:
        self._before_step.fns.append(fn)
        return fn

    def after_step(self, fn: Hook[StepDone]) -> Hook[StepDone]:
        self._after_step.fns.append(fn)
        return fn

    def on_wait(self, fn: Hook[WaitInfo]) -> Hook[WaitInfo]:
        self._on_wait.fns.append(fn)
        return fn

    def on_complete(self, fn: Hook[RunDone]) -> Hook[RunDone]:
        self._on_complete.fns.append(fn)
        return fn

    def on_fail(self, fn: Hook[RunDone]) -> Hook[RunDone]:
        self._on_fail.fns.append(fn)
        return fn

    def remove(self, fn: Callable[..., Any]) -> None:
        """Unregister `fn` from every hook it is registered for."""
        for chain in self._chains():
            chain.fns[:] = [f for f in chain.fns if f is not fn]

    def _chains(self) -> tuple[_Chain[Any], ...]:
        return (
            self._before_step,
            self._after_step,
            self._on_wait,
            self._on_complete,
            self._on_fail,
        )

    @property
    def wants_steps(self) -> bool:
        return bool(self._before_step.fns or self._after_step.fns)

    async def fire_before_step(self, event: StepInfo) -> None:
        await self._before_step.fire(event, event.run_id)

    async def fire_after_step(self, event: StepDone) -> None:
        await self._after_step.fire(event, event.run_id)

    async def fire_wait(self, event: WaitInfo) -> None:
        await self._on_wait.fire(event, event.run_id)

    async def fire_end(self, event: RunDone) -> None:
        chain = self._on_complete if event.status == "completed" else self._on_fail
        await chain.fire(event, event.run_id)

    def any_for(self, name: str) -> bool:
        return bool(self._by_name[name].fns)
