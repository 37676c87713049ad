"""The embedded default: one SQLite file in WAL mode, shared safely by several processes.

One writer thread owns the write connection. Operations queue up for it; it runs what
has gathered in one `BEGIN IMMEDIATE` transaction (each operation in its own savepoint,
so one failing operation rolls back alone) and commits once: group commit, so many
concurrent runs share one commit. A second thread serves reads on its own connection.
`busy_timeout` plus `BEGIN IMMEDIATE` means another process holding the write lock makes
us wait, never fail with "database is locked". What one batch does inside its transaction
is `signoff.store.sqlite_batch`; this module is where batches run. Gathering operations
per turn of the event loop is `signoff.store._batching`, shared with PostgreSQL.

URL: `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`; options as query
parameters: `synchronous=full|normal` (default full: a commit survives power loss),
`busy_timeout=<ms>` (default 30000).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import queue
import sqlite3
import threading
import typing
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from signoff import errors
from signoff.store import _batching, schema, sqlite_batch
from signoff.store.base import Store
from signoff.store.sql import SQLITE, Op

T = TypeVar("T")
log = logging.getLogger(__name__)

_MAX_BATCH = 512

# sqlite3 binds None as NULL only after asking for an adapter, and, finding none, for
# `__adapt__` and `__conform__`: two failed attribute lookups, one of which formats an
# AttributeError's message (some 3,500 instructions per NULL bound; a run of the
# benchmark's workflow binds 28). An adapter for None is found first and gives None back,
# which binds as NULL just the same, in any connection of the process.
_none = typing.cast(Callable[[None], None], {}.get)  # a builtin: the cheapest call
sqlite3.register_adapter(type(None), _none)
_Item = tuple[Any, "asyncio.Future[Any]", asyncio.AbstractEventLoop]  # op or factory
_Waiting = _batching.Waiting[Any]  # an op or factory, and its caller's future


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise errors.InvalidArgument(f"not a SQLite URL: {url!r}")
    path = unquote(parts.path)
    if parts.netloc:
        raise errors.InvalidArgument(
            f"SQLite URL {url!r} has a host; write sqlite:///relative.db or sqlite:////abs.db"
        )
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise errors.InvalidArgument(f"SQLite URL {url!r} names no file")
    if path == ":memory:" or path.startswith("file:"):
        # Each connection (writer, reader, checkpointer) would get its own empty database.
        raise errors.InvalidArgument(
            f"SQLite URL {url!r}: in-memory databases are not supported (the store uses "
            "several connections, and each would see its own empty database); use a file, "
            "for example sqlite:///signoff.db, or one in a temporary folder for tests"
        )
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return path, options


class _Executor(threading.Thread):
    """A thread with one connection that runs queued operations in batches."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], *, write: bool, name: str
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._connect = connect
        self._write = write
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()

    def submit(self, op: Op[T] | Callable[[], Op[T]]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((op, future, loop))
        return future

    def stop(self) -> None:
        self._queue.put(None)

    def run(self) -> None:
        conn: sqlite3.Connection | None = None
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < _MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            try:
                if conn is None:
                    conn = self._connect()
                outcomes = self._run_batch(conn, batch)
            except BaseException as exc:  # connection or commit failed: all fail
                wrapped = sqlite_batch.wrap(exc)
                outcomes = [(False, wrapped)] * len(batch)
            _deliver(batch, outcomes)
        if conn is not None:
            conn.close()

    def enqueue(
        self, op: Any, future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._queue.put((op, future, loop))

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Item]) -> list[tuple[bool, Any]]:
        cur = conn.cursor()
        ops = [op for op, _, _ in batch]
        if not self._write:
            return sqlite_batch.run_reads(cur, ops)
        sqlite_batch.begin_immediate(cur)
        return sqlite_batch.run_writes(conn, cur, ops)


class _Checkpointer(threading.Thread):
    """Copies the WAL back into the database file, off the event loop.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold and
    fsyncs the database file there; on the event loop's thread that stalls every run for
    milliseconds. The inline writer turns it off and nudges this thread instead.
    """

    EVERY = 200  # write batches between checkpoints

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(name="signoff-sqlite-checkpoint", daemon=True)
        self._connect = connect
        self._due = threading.Event()
        self._stopping = False
        self._batches = 0

    def wrote(self) -> None:
        self._batches += 1
        if self._batches >= self.EVERY:
            self._batches = 0
            self._due.set()

    def stop(self) -> None:
        self._stopping = True
        self._due.set()

    def run(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            self._due.wait()
            self._due.clear()
            if self._stopping:
                break
            try:
                conn = conn or self._connect()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # the next one will catch up
                log.warning("WAL checkpoint failed: %s", exc, extra={"action": "checkpoint"})
        if conn is not None:
            conn.close()


class _Inline:
    """Runs operations on the event loop's own thread, batched per loop iteration.

    SQLite statements take microseconds; running them where the coroutines live avoids a
    thread hop and a GIL hand-over per statement. When another process holds the lock,
    the batch moves to the background executor, which waits for it (`busy_timeout`).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        fallback: _Executor,
        *,
        write: bool,
        checkpointer: _Checkpointer | None = None,
    ) -> None:
        self._conn = conn
        self._fallback = fallback
        self._write = write
        self._checkpointer = checkpointer
        self._lock = threading.Lock()
        self._gathering = _batching.Gathering[Any](self._flush)

    def submit(self, op: Op[T] | Callable[[], Op[T]]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        if self._gathering.elsewhere(loop):  # a second event loop uses this store: by thread
            future: asyncio.Future[T] = loop.create_future()
            self._fallback.enqueue(op, future, loop)
            return future
        return self._gathering.submit(op, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting]) -> None:
        if len(batch) > _MAX_BATCH:  # the rest in the next turn, ahead of newer ones
            batch, rest = batch[:_MAX_BATCH], batch[_MAX_BATCH:]
            self._gathering.add(loop, rest)
        try:
            with self._lock:
                outcomes, busy = self._run(batch)
        except BaseException as exc:  # never leave a caller waiting on a lost future
            outcomes, busy = [(f, False, sqlite_batch.wrap(exc)) for _, f in batch], []
        if self._checkpointer is not None and outcomes:
            self._checkpointer.wrote()
        for op, future in busy:  # another process holds a lock: wait for it in the thread
            self._fallback.enqueue(op, future, loop)
        _batching.settle(outcomes)

    def _run(self, batch: list[_Waiting]) -> tuple[list[_batching.Settling], list[_Waiting]]:
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE" if self._write else "BEGIN")
        except sqlite3.OperationalError as exc:
            if sqlite_batch.is_busy(exc):
                return [], batch
            return [(f, False, sqlite_batch.wrap(exc)) for _, f in batch], []
        if self._write:
            try:
                results = sqlite_batch.run_writes(self._conn, cur, [op for op, _ in batch])
            except BaseException as exc:
                results = [(False, sqlite_batch.wrap(exc))] * len(batch)
            return [(f, ok, v) for (_, f), (ok, v) in zip(batch, results, strict=True)], []
        done, busy = [], []
        try:
            for op, future in batch:
                ok, value = sqlite_batch.attempt(cur, sqlite_batch.start_op(op))
                if not ok and sqlite_batch.busy_cause(value) and not inspect.isgenerator(op):
                    busy.append((op, future))
                else:
                    done.append((future, ok, value))
        finally:
            failed = sqlite_batch.end_read(self._conn, cur)
        if failed is not None:  # a damaged file: every read of the batch reports it
            return [(f, False, v if not ok else failed) for f, ok, v in done], busy
        return done, busy


def _deliver(batch: list[_Item], outcomes: list[_batching.Outcome]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[_batching.Settling]] = {}
    for (_, future, loop), (ok, value) in zip(batch, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((future, ok, value))
    for loop, items in by_loop.items():
        _batching.settle_on(loop, items)


class SQLiteStore(Store):
    """A store in one SQLite file."""

    dialect = SQLITE

    def __init__(self, url: str) -> None:
        self.url = url
        self.path, options = parse_url(url)
        sync = options.get("synchronous", "full").upper()
        if sync not in ("FULL", "NORMAL", "EXTRA"):
            raise errors.InvalidArgument(f"synchronous={sync.lower()!r}: use full or normal")
        self._synchronous = sync
        self._busy_ms = int(options.get("busy_timeout", "30000"))
        self._writer: _Executor | None = None
        self._reader: _Executor | None = None
        self._inline_writer: _Inline | None = None
        self._checkpointer: _Checkpointer | None = None
        self._inline_reader: _Inline | None = None
        self._conns: list[sqlite3.Connection] = []
        self._lock = asyncio.Lock()

    @property
    def opened(self) -> bool:
        return self._inline_writer is not None

    def _connect(self, busy_ms: int | None = None) -> sqlite3.Connection:
        busy_ms = self._busy_ms if busy_ms is None else busy_ms
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_ms / 1000,
                cached_statements=256,
            )
            conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            where = os.path.abspath(self.path)
            if sqlite_batch.is_damaged(exc):
                raise errors.StoreUnavailable(
                    f"the SQLite database {where!r} is damaged or not a database ({exc}); "
                    "point at the right file, or restore it from a backup"
                ) from exc
            raise errors.StoreUnavailable(
                f"cannot open the SQLite database {where!r}: {exc}; "
                "check that its folder exists and is writable"
            ) from exc
        return conn

    async def open(self) -> None:
        async with self._lock:
            if self._writer is not None:
                return
            writer = _Executor(self._connect, write=True, name="signoff-sqlite-writer")
            writer.start()
            try:
                await writer.submit(schema.migrate("sqlite"))
            except BaseException:
                writer.stop()
                raise
            reader = _Executor(self._connect, write=False, name="signoff-sqlite-reader")
            reader.start()
            self._conns = [self._connect(), self._connect()]
            for conn in self._conns:  # inline: never block the event loop on a lock
                conn.execute("PRAGMA busy_timeout = 0")
            self._conns[0].execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = _Checkpointer(self._connect)
            self._checkpointer.start()
            self._inline_writer = _Inline(
                self._conns[0], writer, write=True, checkpointer=self._checkpointer
            )
            self._inline_reader = _Inline(self._conns[1], reader, write=False)
            self._writer, self._reader = writer, reader

    async def close(self) -> None:
        async with self._lock:
            threads = [t for t in (self._writer, self._reader, self._checkpointer) if t]
            for thread in threads:
                thread.stop()
            for thread in threads:
                await asyncio.to_thread(thread.join)
            self._checkpointer = None
            for conn in self._conns:
                conn.close()
            self._conns = []
            self._writer = self._reader = None
            self._inline_writer = self._inline_reader = None

    async def require_existing(self) -> None:
        """An empty file counts as no database: SQLite leaves one where a connection was
        opened and nothing written."""
        if not (os.path.isfile(self.path) and os.path.getsize(self.path) > 0):
            where = os.path.abspath(self.path)
            raise errors.DatabaseNotFound(
                f"no SQLite database at {where!r} ({self.url})", url=self.url
            )

    async def _write(self, op: Callable[[], Op[T]]) -> T:
        if self._inline_writer is None:
            await self.open()
            assert self._inline_writer is not None
        result = await self._inline_writer.submit(op)
        self._committed()
        return result

    async def _read(self, op: Callable[[], Op[T]]) -> T:
        if self._inline_reader is None:
            await self.open()
            assert self._inline_reader is not None
        return await self._inline_reader.submit(op)
