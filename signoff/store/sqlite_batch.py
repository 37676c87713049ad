"""Transactions on one SQLite connection: a batch of read operations in one snapshot, a
batch of writes in one `BEGIN IMMEDIATE` transaction with a savepoint per operation when
one fails, and driver errors wrapped into the package's own (the original as `__cause__`).

No threads and no event loop here: `signoff.store.sqlite` decides where a batch runs (on
the event loop's thread, or a background thread when another process holds a lock).
Every outcome is a `(ok, value)` pair, so no error is ever lost between the operation
that raised it and the caller waiting for it.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sqlite3
import time
from typing import Any

from signoff import errors
from signoff.store.sql import SQLITE, LeaseLost, Op, drive

log = logging.getLogger(__name__)


def run_reads(cur: sqlite3.Cursor, ops: list[Op[Any]]) -> list[tuple[bool, Any]]:
    """Run read operations in one snapshot."""
    cur.execute("BEGIN")
    outcomes: list[tuple[bool, Any]] = []
    try:
        outcomes = [attempt(cur, start_op(op)) for op in ops]
    finally:
        failed = end_read(cur.connection, cur)
    if failed is not None:
        return [(False, v if not ok else failed) for ok, v in outcomes]
    return outcomes


def end_read(conn: sqlite3.Connection, cur: sqlite3.Cursor) -> BaseException | None:
    """End a read transaction; the wrapped error if even that fails (a damaged file
    fails its COMMIT too), leaving the connection out of any transaction."""
    try:
        cur.execute("COMMIT")
        return None
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.rollback()
        return wrap(exc)


def run_writes(
    conn: sqlite3.Connection, cur: sqlite3.Cursor, items: list[Any]
) -> list[tuple[bool, Any]]:
    """Run write operations in the transaction just begun and commit.

    Operations run back to back; only if one raises is the batch rolled back to its
    start and run again with a savepoint around each, so that the failing one alone is
    undone. (Items are operation factories; a bare generator cannot run twice and
    always gets its own savepoint.)
    """
    if len(items) == 1:
        ok, value = attempt(cur, start_op(items[0]))
        cur.execute("COMMIT" if ok else "ROLLBACK")
        return [(ok, value)]
    outcomes: list[tuple[bool, Any]] = []
    try:
        if not any(inspect.isgenerator(item) for item in items):
            cur.execute("SAVEPOINT batch")
            for item in items:
                ok, value = attempt(cur, item())
                if not ok:
                    cur.execute("ROLLBACK TO batch")
                    outcomes = []
                    break
                outcomes.append((ok, value))
            cur.execute("RELEASE batch")
        if len(outcomes) != len(items):
            outcomes = [in_savepoint(cur, item) for item in items]
        cur.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise
    return outcomes


def in_savepoint(cur: sqlite3.Cursor, item: Any) -> tuple[bool, Any]:
    cur.execute("SAVEPOINT op")
    ok, value = attempt(cur, start_op(item))
    if not ok:
        cur.execute("ROLLBACK TO op")
    cur.execute("RELEASE op")
    return ok, value


def start_op(item: Any) -> Op[Any]:
    op: Op[Any] = item if inspect.isgenerator(item) else item()
    return op


def is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def busy_cause(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, sqlite3.OperationalError) and is_busy(cause)


def begin_immediate(cur: sqlite3.Cursor) -> None:
    deadline = time.monotonic() + 300
    while True:
        try:
            cur.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            if time.monotonic() > deadline:
                raise
            log.warning(
                "database is busy; waiting for the write lock", extra={"action": "sqlite_busy"}
            )


def attempt(cur: sqlite3.Cursor, op: Op[Any]) -> tuple[bool, Any]:
    try:
        return True, drive(cur, op, SQLITE)
    except (LeaseLost, errors.SignoffError) as exc:
        return False, exc
    except BaseException as exc:
        return False, wrap(exc)


def wrap(exc: BaseException) -> BaseException:
    if isinstance(exc, errors.SignoffError | LeaseLost):
        return exc
    if isinstance(exc, sqlite3.Error):
        hint = "; the database file is damaged: restore it from a backup"
        hint = hint if is_damaged(exc) else ""
        wrapped = errors.StoreError(f"SQLite error: {exc}{hint}")
        wrapped.__cause__ = exc
        return wrapped
    return exc


def is_damaged(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
