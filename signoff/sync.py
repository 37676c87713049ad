"""`SyncEngine`: the engine's operations for code that is not async.

Each method runs the async implementation on a private event loop in a background
thread, so there is one body for both. `with engine.sync:` also runs a worker there.
Calling a sync method from inside a running event loop raises an error that names the
async method to await instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from signoff import errors, models

if TYPE_CHECKING:
    from signoff.engine import Engine

T = TypeVar("T")


class SyncEngine:
    """Blocking twins of `Engine`'s methods: `engine.sync.approve(run_id, "manager")`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="signoff-sync", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

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
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop()).result()

    def close(self) -> None:
        """Stop the worker (if any), close the store and the background loop."""
        if self._loop is None:
            return
        self._call("close", self._engine.close())
        loop, thread = self._loop, self._thread
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join()
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> SyncEngine:
        self._call("start_worker", self._engine.start_worker())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, workflow: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> models.Run:
        return self._call("start", self._engine.start(workflow, *args, **kwargs))

    def approve(self, run_id: str, key: str, **kw: Any) -> models.Decision:
        return self._call("approve", self._engine.approve(run_id, key, **kw))

    def reject(self, run_id: str, key: str, **kw: Any) -> models.Decision:
        return self._call("reject", self._engine.reject(run_id, key, **kw))

    def edit(self, run_id: str, key: str, value: Any, **kw: Any) -> models.Decision:
        return self._call("edit", self._engine.edit(run_id, key, value, **kw))

    def request_changes(self, run_id: str, key: str, **kw: Any) -> models.Decision:
        return self._call("request_changes", self._engine.request_changes(run_id, key, **kw))

    def signal(self, run_id: str, name: str, data: Any = None, **kw: Any) -> None:
        self._call("signal", self._engine.signal(run_id, name, data, **kw))

    def cancel(self, run_id: str, **kw: Any) -> models.Run:
        return self._call("cancel", self._engine.cancel(run_id, **kw))

    def retry(self, run_id: str, **kw: Any) -> models.Run:
        return self._call("retry", self._engine.retry(run_id, **kw))

    def result(self, run_id: str, **kw: Any) -> Any:
        return self._call("result", self._engine.result(run_id, **kw))

    def settle(self, run_id: str, **kw: Any) -> models.Run:
        return self._call("settle", self._engine.settle(run_id, **kw))

    def get_run(self, run_id: str) -> models.Run:
        return self._call("get_run", self._engine.get_run(run_id))

    def list_runs(self, **kw: Any) -> list[models.Run]:
        return self._call("list_runs", self._engine.list_runs(**kw))

    def pending_approvals(self, **kw: Any) -> list[models.Approval]:
        return self._call("pending_approvals", self._engine.pending_approvals(**kw))

    def approvals(self, run_id: str) -> list[models.Approval]:
        return self._call("approvals", self._engine.approvals(run_id))

    def history(self, run_id: str) -> list[models.HistoryEvent]:
        return self._call("history", self._engine.history(run_id))
