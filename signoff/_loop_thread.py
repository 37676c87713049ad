"""An event loop of one's own, running forever on a daemon thread.

The PostgreSQL store runs its operations on one, so that one store serves any number of
caller event loops; `SyncEngine` runs the async engine on one, so that blocking code
gets the same implementation. The loop starts on first use; `stop` (or `stop_async`,
from another event loop) ends it and closes it, and a later use starts a new one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A private event loop on a background thread named `name`."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._running: tuple[asyncio.AbstractEventLoop, threading.Thread] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop if it runs: None before its first use and after `stop`."""
        running = self._running
        return None if running is None else running[0]

    def start(self) -> asyncio.AbstractEventLoop:
        """The loop, started if it does not run yet."""
        with self._lock:
            if self._running is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._running = loop, thread
            return self._running[0]

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `coro` on the loop (started if need be); its future, for any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.start())

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await, from another event loop, `coro` run on this one."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self) -> None:
        """Stop the loop, wait for its thread to end and close it (blocks)."""
        halted = self._halt()
        if halted is not None:
            loop, thread = halted
            thread.join()
            loop.close()

    async def stop_async(self) -> None:
        """`stop`, for a caller on another event loop (which keeps running meanwhile)."""
        halted = self._halt()
        if halted is not None:
            loop, thread = halted
            await asyncio.to_thread(thread.join)
            loop.close()

    def _halt(self) -> tuple[asyncio.AbstractEventLoop, threading.Thread] | None:
        """Forget the loop (a later use starts a new one) and ask it to stop."""
        with self._lock:
            halted, self._running = self._running, None
        if halted is not None:
            halted[0].call_soon_threadsafe(halted[0].stop)
        return halted
