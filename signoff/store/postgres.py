"""PostgreSQL: one database shared by any number of worker processes on any machines.

Operations run on the event loop that opened the store (its home: the engine's, where
its worker and API run), so they reach the database without a thread hop; a caller on
another loop (a `SyncEngine`, a thread of its own) hands its operations over to the home
loop. Each runs in its own transaction on a connection from a
`psycopg_pool.AsyncConnectionPool`. Writes run at
READ COMMITTED with explicit row locks (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED` in claims
and timers); reads run in one REPEATABLE READ READ ONLY snapshot.

Wake-ups: a trigger on `runs` issues `NOTIFY signoff_wakeup` in the transaction that makes
a run runnable by anyone (a new unclaimed run, a decision or signal sent from a process
without a worker, a retry, a released lease); one dedicated connection per store LISTENs
and calls the registered wake-up callbacks. Polling remains the fallback.

Outages: an operation whose connection fails before the database answered its first
statement is retried on a fresh connection, with backoff, for up to `retry_for` seconds
(nothing of it was committed, so this is safe); a failure later in the transaction is
raised as `StoreUnavailable` and the caller (worker loop, runner) retries at its level.

URL: `postgresql://user:password@host:port/dbname?option=value`; libpq options pass
through; signoff's own: `pool_size` (default 10), `retry_for` (seconds, default 15),
`connect_timeout` (seconds, default 5).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import zlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg_pool

from signoff import errors
from signoff.store import _batching, schema
from signoff.store.base import Listener, Store, listener, tell
from signoff.store.sql import POSTGRES, LeaseLost, Op, Query, Result, answer

T = TypeVar("T")
log = logging.getLogger(__name__)

CHANNEL = "signoff_wakeup"
# Serializes migrations across processes (pg_advisory_xact_lock); any fixed 64-bit number.
MIGRATION_LOCK = zlib.crc32(b"signoff.schema.migrate")

_BEGIN_WRITE = "BEGIN"
_MAX_BATCH = 64  # operations in one transaction: more would hold row locks for longer
_BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_OWN_OPTIONS = ("pool_size", "retry_for", "connect_timeout")


_Pool = psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]
_Write = _batching.Waiting[Callable[[], Op[Any]]]


class _Retry(Exception):
    """The transaction failed in a way that may pass: the connection was `lost` (or none
    could be had), or the server aborted it (deadlock). `restart`: the operation had
    received answers, so only a fresh instance of it may run again."""

    def __init__(self, *, lost: bool, restart: bool) -> None:
        super().__init__()
        self.lost = lost
        self.restart = restart


class _BatchFailed(Exception):
    """A batch could not commit as a whole; nothing of it was committed."""


class _NeedsSnapshot(Exception):
    """A read run without a transaction has a second statement: run it in a snapshot."""


_TRANSIENT = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def parse_url(url: str) -> tuple[str, dict[str, float]]:
    """Split signoff's options off a PostgreSQL URL; return (libpq URL, options)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise errors.InvalidArgument(f"not a PostgreSQL URL: {url!r}")
    options: dict[str, float] = {"pool_size": 10, "retry_for": 15.0, "connect_timeout": 5}
    passthrough = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OWN_OPTIONS:
            try:
                options[key] = float(value)
            except ValueError:
                raise errors.InvalidArgument(
                    f"{key}={value!r} in the database URL is not a number"
                ) from None
        else:
            passthrough.append((key, value))
    if options["pool_size"] < 1:
        raise errors.InvalidArgument("pool_size in the database URL must be at least 1")
    passthrough.append(("connect_timeout", str(max(1, int(options["connect_timeout"])))))
    if not any(k == "application_name" for k, _ in passthrough):
        passthrough.append(("application_name", "signoff"))
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(passthrough), ""))
    return conninfo, options


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _wrap(exc: BaseException, where: str) -> BaseException:
    """A psycopg error as the signoff error a caller can handle (cause kept)."""
    if isinstance(exc, errors.SignoffError | LeaseLost) or not isinstance(exc, psycopg.Error):
        return exc
    if isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout):
        wrapped: errors.StoreError = errors.StoreUnavailable(
            f"PostgreSQL is unreachable ({where}): {_first_line(exc)}"
        )
    else:
        wrapped = errors.StoreError(f"PostgreSQL error ({where}): {_first_line(exc)}")
    wrapped.__cause__ = exc
    return wrapped


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _refused(exc: BaseException, conn: psycopg.AsyncConnection[Any]) -> bool:
    """The server answered `exc` (an error with its SQLSTATE) on a connection still up:
    the transaction it fell in did not commit. Anything else at commit (the connection
    lost, the wait cancelled) leaves the outcome unknown."""
    return (
        isinstance(exc, psycopg.Error)
        and exc.sqlstate is not None
        and not conn.closed
        and not conn.broken
    )


def _connection_lost(exc: BaseException, conn: psycopg.AsyncConnection[Any] | None) -> bool:
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    return conn is None or conn.broken or conn.closed


class PostgresStore(Store):
    """A store in one PostgreSQL database."""

    dialect = POSTGRES

    def __init__(self, url: str) -> None:
        self.url = url
        self._conninfo, options = parse_url(url)
        self._pool_size = int(options["pool_size"])
        self._retry_for = options["retry_for"]
        self._pool_timeout = max(options["connect_timeout"], 1.0)
        self._connect_timeout = options["connect_timeout"]
        self._home_loop: asyncio.AbstractEventLoop | None = None
        self._opening_lock = threading.Lock()
        self._pool: _Pool | None = None
        self._opening: concurrent.futures.Future[None] | None = None
        self._listeners: list[Listener] = []
        self._listen_task: asyncio.Task[None] | None = None
        self._wake_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writes = _batching.Gathering[Callable[[], Op[Any]]](self._flush)

    # the home loop ---------------------------------------------------------------------

    def _home(self) -> asyncio.AbstractEventLoop:
        """The loop operations run on: the one that opened the store; the caller's own if
        that one has stopped (its pool and listener went with it: the store opens anew)."""
        home = self._home_loop
        if home is None or home.is_closed() or not home.is_running():
            if home is not None:
                self._forget()
            home = self._home_loop = asyncio.get_running_loop()
        return home

    def _home_alive(self) -> bool:
        home = self._home_loop
        return home is not None and not home.is_closed() and home.is_running()

    def _forget(self) -> None:
        """Drop what belonged to a home loop that stopped without closing the store."""
        self._pool, self._listen_task, self._opening = None, None, None
        self._tasks.clear()

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        home = self._home()
        if home is asyncio.get_running_loop():
            return await coro
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._tracked(coro), home)
        )

    async def _tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await coro
        finally:
            self._tasks.discard(task)

    # lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None and self._home_alive():
            return
        home = self._home()
        with self._opening_lock:
            opening = self._opening
            if opening is None:
                opening = self._opening = asyncio.run_coroutine_threadsafe(self._open(), home)
        try:
            await asyncio.wrap_future(opening)
        finally:
            with self._opening_lock:
                if self._opening is opening and opening.done():
                    self._opening = None

    async def _open(self) -> None:
        if self._pool is not None:
            return
        await self._migrate()
        pool = psycopg_pool.AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            kwargs={"autocommit": True},
            timeout=self._pool_timeout,
            name="signoff",
        )
        try:
            await pool.open(wait=True, timeout=self._pool_timeout)
        except psycopg.Error as exc:
            await pool.close()
            raise _wrap(exc, "opening the connection pool") from exc
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        if self._listeners:
            self._start_listening()

    async def _migrate(self) -> None:
        """Bring the schema up to date; concurrent migrations wait for one another."""
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise errors.StoreUnavailable(
                f"cannot connect to PostgreSQL at {_redact(self.url)}: {_first_line(exc)}"
            ) from exc
        try:
            async with conn.cursor() as cur:
                await cur.execute(_BEGIN_WRITE)
                try:
                    await cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    before, after = await _drive(cur, schema.migrate("postgres"))
                except BaseException:
                    if not conn.broken:
                        await cur.execute("ROLLBACK")
                    raise
                await cur.execute("COMMIT")
            if before != after:
                log.info(
                    "migrated the database schema from version %s to %s",
                    before,
                    after,
                    extra={"action": "schema_migrated", "from": before, "to": after},
                )
        except psycopg.Error as exc:
            raise _wrap(exc, "migrating the schema") from exc
        finally:
            await conn.close()

    async def close(self) -> None:
        home = self._home_loop
        if home is None:
            return
        with contextlib.suppress(Exception):
            if home is asyncio.get_running_loop():
                await self._close()
            elif self._home_alive():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close(), home))
        self._forget()
        self._home_loop = None

    async def _close(self) -> None:
        # operations still running here were abandoned by their callers (loop gone)
        others = list(self._tasks)
        if self._listen_task is not None:
            others.append(self._listen_task)
        self._listen_task = None
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # operations ------------------------------------------------------------------------

    async def _write(self, op: Callable[[], Op[T]] | Op[T]) -> T:
        if self._pool is None or not self._home_alive():
            await self.open()
        if not callable(op):  # a bare generator cannot be run again: on its own
            result = await self._call(self._run(op, _BEGIN_WRITE))
        else:
            future: asyncio.Future[T] = self._writes.submit(op)
            result = await future
        self._committed()
        return result

    # group commit ----------------------------------------------------------------------
    #
    # Writes gathered during one iteration of the caller's loop (handed to the home loop
    # if it is another) share one transaction, sent as a pipeline: statements whose result no
    # operation reads go out without waiting, so a batch costs a few round trips and one
    # commit instead of several of each per operation. If any operation of the batch
    # fails, the batch is rolled back and each operation runs again on its own (with the
    # retries of `_run`), so one failing operation fails alone. The gathering and the
    # settling of callers' futures are `_batching`'s, shared with the SQLite store.

    def _flush(self, caller: asyncio.AbstractEventLoop, batch: list[_Write]) -> None:
        home = self._home()
        for start in range(0, len(batch), _MAX_BATCH):
            part = batch[start : start + _MAX_BATCH]
            done: asyncio.Future[list[_batching.Outcome]] | concurrent.futures.Future[Any]
            if home is caller:
                done = caller.create_task(self._tracked(self._write_batch(part)))
            else:
                done = asyncio.run_coroutine_threadsafe(
                    self._tracked(self._write_batch(part)), home
                )
            done.add_done_callback(functools.partial(_deliver_batch, caller, part))

    async def _write_batch(self, batch: list[_Write]) -> list[_batching.Outcome]:
        factories = [factory for factory, _ in batch]
        try:
            return await self._pipelined(factories)
        except _BatchFailed:
            pass  # each on its own below
        except BaseException as exc:  # unknown outcome (failed at commit): all fail
            return [(False, exc)] * len(factories)
        outcomes = await asyncio.gather(
            *(self._run(factory, _BEGIN_WRITE) for factory in factories), return_exceptions=True
        )
        return [(not isinstance(o, BaseException), o) for o in outcomes]

    async def _pipelined(self, factories: list[Callable[[], Op[Any]]]) -> list[_batching.Outcome]:
        pool = self._pool
        if pool is None:
            raise _BatchFailed
        try:
            conn = await pool.getconn(timeout=self._pool_timeout)
        except psycopg_pool.PoolTimeout as exc:
            raise _BatchFailed from exc
        committing = False
        try:
            try:
                cur = conn.cursor()
                async with conn.pipeline() as pipe:
                    piped = _Piped(cur, pipe)
                    await cur.execute(_BEGIN_WRITE)
                    for factory in factories:
                        await piped.drive(factory())
                    committing = True
                    # No round trip of its own: COMMIT goes out behind the batch's statements
                    # and the pipeline's closing sync answers it with them. A statement that
                    # failed (a fence that held no row among them: `_held`) made the server
                    # skip it.
                    await cur.execute("COMMIT")
            except BaseException as exc:
                if committing and not _refused(exc, conn):
                    raise _wrap(exc, "at commit, so its outcome is unknown") from exc
                if not conn.closed and not conn.broken:
                    with contextlib.suppress(psycopg.Error):
                        await conn.execute("ROLLBACK")
                raise _BatchFailed from exc
            return await piped.finish()  # committed: the answers that came with the commit
        finally:
            await pool.putconn(conn)

    async def _read(self, op: Callable[[], Op[T]] | Op[T]) -> T:
        if self._pool is None or not self._home_alive():
            await self.open()
        return await self._call(self._run(op, _BEGIN_READ))

    async def _run(self, source: Callable[[], Op[T]] | Op[T], begin: str) -> T:
        """Drive the operation in one transaction, running it again when that is safe.

        Safe: the connection failed before the database answered the first statement
        (nothing of it can have happened), or, when `source` is a factory that makes the
        operation afresh, anywhere before COMMIT (the server rolled it back) and after a
        deadlock. A failure at COMMIT leaves the outcome unknown: it is raised.
        """
        factory = source if callable(source) else None
        op: Op[T] = factory() if factory is not None else source  # type: ignore[assignment]
        try:
            first = next(op)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for
        delay, attempt = 0.05, 0
        # a read of one statement needs no transaction (one round trip instead of three);
        # one that turns out to have more is run again in a snapshot
        single = begin == _BEGIN_READ and factory is not None
        while True:
            attempt += 1
            pool = self._pool
            if pool is None:
                op.close()
                raise errors.StoreUnavailable("the PostgreSQL store is closed")
            try:
                return await self._attempt(
                    pool, op, first, None if single else begin, deadline - loop.time()
                )
            except _NeedsSnapshot:
                assert factory is not None
                single, attempt = False, attempt - 1
                op = factory()
                first = next(op)
            except _Retry as retry:
                cause = retry.__cause__ or retry
                left = deadline - loop.time()
                if left <= 0 or (retry.restart and factory is None):
                    op.close()
                    where = "gave up after {attempt} attempts" if left <= 0 else "in a transaction"
                    raise _wrap(cause, where.format(attempt=attempt)) from cause
                if retry.restart:
                    assert factory is not None
                    op.close()
                    op = factory()
                    try:
                        first = next(op)
                    except StopIteration as stop:  # pragma: no cover - it yielded before
                        return stop.value  # type: ignore[no-any-return]
                if retry.lost:  # its idle siblings most likely died with it: weed them out
                    await _check(pool)
                pause = 0.0 if attempt == 1 else min(delay, left)
                if attempt > 1:
                    delay = min(delay * 2, 2.0)
                log.warning(
                    "database %s (%s); retrying in %.2fs",
                    "connection failed" if retry.lost else "transaction aborted",
                    _first_line(cause),
                    pause,
                    extra={"action": "store_retry", "attempt": attempt},
                )
                if pause:
                    await asyncio.sleep(pause)

    async def _attempt(
        self, pool: _Pool, op: Op[T], first: Query, begin: str | None, left: float
    ) -> T:
        try:
            conn = await pool.getconn(timeout=max(0.1, min(left, self._pool_timeout)))
        except psycopg_pool.PoolTimeout as exc:
            raise _Retry(lost=True, restart=False) from exc
        answered = False
        try:
            cur = conn.cursor()
            try:
                if begin is not None:
                    await cur.execute(begin)
                query = first
                while True:
                    await cur.execute(_render(query.sql), query.params)
                    rows = await cur.fetchall() if cur.description is not None else []
                    answered = True
                    query = op.send(answer(query, rows, cur.rowcount))
                    if begin is None:
                        op.close()
                        raise _NeedsSnapshot()
            except StopIteration as stop:
                if begin is None:
                    return stop.value  # type: ignore[no-any-return]
                try:
                    await cur.execute("COMMIT")
                except psycopg.Error as exc:
                    raise _wrap(exc, "at commit, so its outcome is unknown") from exc
                return stop.value  # type: ignore[no-any-return]
            except BaseException as exc:
                if isinstance(exc, _NeedsSnapshot):
                    raise
                lost = _connection_lost(exc, conn)
                if not lost and begin is not None:
                    with contextlib.suppress(psycopg.Error):
                        await conn.execute("ROLLBACK")
                if lost or isinstance(exc, _TRANSIENT):
                    raise _Retry(lost=lost, restart=answered) from exc
                op.close()
                wrapped = _wrap(exc, "in a transaction")
                if wrapped is exc:
                    raise
                raise wrapped from exc
            finally:
                if not conn.closed:
                    await cur.close()
        finally:
            await pool.putconn(conn)

    # wake-ups --------------------------------------------------------------------------

    def add_wakeup_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.append(listener(callback))
        loop = self._home_loop
        if loop is not None and self._pool is not None and self._home_alive():
            loop.call_soon_threadsafe(self._start_listening)

    def remove_wakeup_listener(self, callback: Callable[[], None]) -> None:
        self._listeners = [(cb, lp) for cb, lp in self._listeners if cb != callback]

    def _start_listening(self) -> None:
        if self._listen_task is None and self._listeners and self._pool is not None:
            self._listen_task = asyncio.get_running_loop().create_task(
                self._listen(), name="signoff-listen"
            )

    def _wake_all(self) -> None:
        self._wake_scheduled = False
        tell(list(self._listeners))

    def _schedule_wake(self) -> None:
        if not self._wake_scheduled:
            self._wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._wake_all)

    async def _listen(self) -> None:
        delay, lost = 0.05, False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if lost:
                        log.info(
                            "wake-up listener reconnected", extra={"action": "listen_reconnected"}
                        )
                        self._schedule_wake()  # anything missed while away
                    delay, lost = 0.05, False
                    while True:
                        async for _ in conn.notifies(timeout=10.0):
                            self._schedule_wake()
                        await conn.execute("SELECT 1")  # quiet for a while: still there?
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                lost = True
                log.warning(
                    "wake-up listener lost the database (%s); reconnecting in %.2fs",
                    _first_line(exc),
                    delay,
                    extra={"action": "listen_reconnect"},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


async def _check(pool: _Pool) -> None:
    with contextlib.suppress(Exception):
        await pool.check()


_UNREAD = Result([], -1)


@functools.lru_cache(maxsize=256)
def _held(sql: str) -> str:
    """A fenced UPDATE (`Query.fence`) made to fail, instead of changing no row, when the
    run is no longer held under its fence: the pipeline then skips the rest of the batch,
    its COMMIT with it, and nothing waits for the fence's answer before committing. Its
    rows are those of the UPDATE's RETURNING, if any. The failure is the division by the
    count of changed rows (a plain expression needs no function in the schema); the
    batch's operations then run again one by one, where the fence is checked as usual."""
    update, returning, columns = sql.partition(" RETURNING ")
    return (
        f"WITH held AS ({update} RETURNING {columns if returning else '1'}) "
        "SELECT held.* FROM (SELECT 1 / count(*) AS one FROM held) AS fence "
        "LEFT JOIN held ON true WHERE fence.one = 1"
    )


class _Piped:
    """Drives a batch's operations inside one pipeline: a statement whose answer no
    operation needs now goes out without a round trip; the answers of early reads are
    taken at the next round trip (`settle`) or with the commit (`finish`), as are those of
    an operation's last read (`Query.last`), the operation resuming then. Fences fail on
    the server (`_held`)."""

    __slots__ = ("cur", "dirty", "pending", "pipe", "values", "waiting")

    def __init__(self, cur: psycopg.AsyncCursor[Any], pipe: psycopg.AsyncPipeline) -> None:
        self.cur, self.pipe = cur, pipe
        self.pending: list[tuple[psycopg.AsyncCursor[Any], Query, Result]] = []
        self.dirty = False  # statements sent since the last round trip
        self.values: list[_batching.Outcome] = []  # each operation's, in order
        # operations paused on their last read: (their place in values, op, its cursor, it)
        self.waiting: list[tuple[int, Op[Any], psycopg.AsyncCursor[Any], Query]] = []

    async def drive(self, op: Op[Any]) -> None:
        cur = self.cur
        try:
            query = next(op)
            while True:
                sql = _render(query.sql)
                if query.fence is not None:
                    sql = _held(sql)
                if query.last:
                    own = cur.connection.cursor()
                    await own.execute(sql, query.params)
                    self.dirty = True
                    self.waiting.append((len(self.values), op, own, query))
                    self.values.append((False, None))  # until `finish`
                    return
                if query.wait:
                    await cur.execute(sql, query.params)
                    self.dirty = True
                    await self.settle()
                    rows = await cur.fetchall() if cur.description is not None else []
                    query = op.send(answer(query, rows, cur.rowcount))
                elif query.early:
                    own = cur.connection.cursor()  # its answer, apart from the others'
                    await own.execute(sql, query.params)
                    result = Result([], -1)
                    self.pending.append((own, query, result))
                    self.dirty = True
                    query = op.send(result)
                else:
                    await cur.execute(sql, query.params)
                    self.dirty = True
                    query = op.send(_UNREAD)
        except StopIteration as stop:
            self.values.append((True, stop.value))

    async def settle(self) -> None:
        """One round trip, unless nothing went out since the last; then the answers of
        early reads are filled in."""
        if not self.dirty and not self.pending:
            return
        await self.pipe.sync()
        self.dirty = False
        await self._fill()

    async def _fill(self) -> None:
        pending, self.pending = self.pending, []
        for own, query, result in pending:
            rows = await own.fetchall() if own.description is not None else []
            filled = answer(query, rows, own.rowcount)
            result.rows, result.rowcount = filled.rows, filled.rowcount

    async def finish(self) -> list[_batching.Outcome]:
        """Once the batch has committed: the answers that came with the commit, and the
        values of the operations that waited for them."""
        await self._fill()
        for index, op, own, query in self.waiting:
            try:
                rows = await own.fetchall() if own.description is not None else []
                op.send(answer(query, rows, own.rowcount))
            except StopIteration as stop:
                self.values[index] = (True, stop.value)
                continue
            except BaseException as exc:
                self.values[index] = (False, exc)
                continue
            op.close()
            self.values[index] = (False, RuntimeError(f"a statement after a last read: {query}"))
        return self.values


def _deliver_batch(
    caller: asyncio.AbstractEventLoop,
    batch: list[_Write],
    done: asyncio.Future[list[_batching.Outcome]] | concurrent.futures.Future[Any],
) -> None:
    """Hand a batch's outcomes back to the loop its callers wait on."""
    try:
        outcomes = done.result()
    except BaseException as exc:  # the home loop went away under the batch
        outcomes = [(False, exc)] * len(batch)
    settling = [(f, ok, v) for (_, f), (ok, v) in zip(batch, outcomes, strict=True)]
    _batching.settle_on(caller, settling)


def _render(sql: str) -> str:
    return POSTGRES.render(sql)


async def _drive(cur: psycopg.AsyncCursor[Any], op: Op[T]) -> T:
    """Run `op` on `cur` inside the caller's transaction."""
    try:
        query = next(op)
        while True:
            await cur.execute(_render(query.sql), query.params)
            rows = await cur.fetchall() if cur.description is not None else []
            query = op.send(answer(query, rows, cur.rowcount))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
