"""`SyncEngine`: the engine's operations for code that is not async.

Each method runs the async implementation on a private event loop in a background
thread, so there is one body for both. `with engine.sync:` also runs a worker there.
Calling a sync method from inside a running event loop raises an error that names the
async method to await instead.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from signoff import _loop_thread, errors
from signoff.engine import Engine

T = TypeVar("T")
P = ParamSpec("P")


class _Blocking(Generic[P, T]):
    """A blocking twin of an async `Engine` method, with its signature (for IDEs, mypy)."""

    def __init__(self, method: Callable[Concatenate[Engine, P], Coroutine[Any, Any, T]]) -> None:
        self.method = method
        self.name = method.__name__
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, sync: None, owner: type[Any]) -> _Blocking[P, T]: ...
    @overload
    def __get__(self, sync: SyncEngine, owner: type[Any]) -> Callable[P, T]: ...
    def __get__(
        self, sync: SyncEngine | None, owner: type[Any]
    ) -> _Blocking[P, T] | Callable[P, T]:
        if sync is None:
            return self
        method, name = self.method, self.name

        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return sync._call(name, method(sync._engine, *args, **kwargs))

        call.__name__ = call.__qualname__ = name
        call.__doc__ = method.__doc__
        call.__signature__ = inspect.signature(getattr(sync._engine, name))  # type: ignore[attr-defined]
        return call


def _blocking(
    method: Callable[Concatenate[Engine, P], Coroutine[Any, Any, T]],
) -> _Blocking[P, T]:
    return _Blocking(method)


class SyncEngine:
    """Blocking twins of `Engine`'s methods: `engine.sync.approve(run_id, "manager")`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._loop_thread = _loop_thread.LoopThread("signoff-sync")

    def _call(self, name: str, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise errors.InvalidArgument(
                f"engine.sync.{name}() blocks, and this code runs inside an event loop; "
                f"use `await engine.{name}(...)` instead"
            )
        return self._loop_thread.submit(coro).result()

    def close(self) -> None:
        """Stop the worker (if any), close the store and the background loop."""
        if self._loop_thread.loop is None:
            return
        self._call("close", self._engine.close())
        self._loop_thread.stop()

    def __enter__(self) -> SyncEngine:
        self._call("start_worker", self._engine.start_worker())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # every operation of the engine, blocking: derived from the async methods (one body)
    start = _blocking(Engine.start)
    get_run = _blocking(Engine.get_run)
    list_runs = _blocking(Engine.list_runs)
    count_runs = _blocking(Engine.count_runs)
    history = _blocking(Engine.history)
    cancel = _blocking(Engine.cancel)
    retry = _blocking(Engine.retry)
    settle = _blocking(Engine.settle)
    result = _blocking(Engine.result)
    approve = _blocking(Engine.approve)
    reject = _blocking(Engine.reject)
    edit = _blocking(Engine.edit)
    answer = _blocking(Engine.answer)
    request_changes = _blocking(Engine.request_changes)
    pending_approvals = _blocking(Engine.pending_approvals)
    decided_approvals = _blocking(Engine.decided_approvals)
    approvals = _blocking(Engine.approvals)
    signal = _blocking(Engine.signal)
    notify = _blocking(Engine.notify)
    resolve_run_id = _blocking(Engine.resolve_run_id)
    verify_audit = _blocking(Engine.verify_audit)
    check = _blocking(Engine.check)
    purge = _blocking(Engine.purge)
    deliveries = _blocking(Engine.deliveries)
    retry_delivery = _blocking(Engine.retry_delivery)
    deliver_notifications = _blocking(Engine.deliver_notifications)
