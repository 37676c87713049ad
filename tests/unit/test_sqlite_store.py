"""The SQLite store's own promises: clear errors, and other processes' locks are waited
for, never reported as "database is locked"."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff import Context, Engine, StoreUnavailable
from signoff.errors import DatabaseNotFound, InvalidArgument, StoreError
from signoff.store.sqlite import SQLiteStore, parse_url


async def test_a_path_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    engine = Engine(f"sqlite:///{blocker}/signoff.db")
    with pytest.raises(StoreUnavailable, match=r"not-a-folder/signoff\.db.*writable"):
        await engine.open()
    await engine.close()


def test_urls() -> None:
    assert parse_url("sqlite:///rel/x.db") == ("rel/x.db", {})
    assert parse_url("sqlite:////abs/x.db?synchronous=normal") == (
        "/abs/x.db",
        {"synchronous": "normal"},
    )
    for bad in ("sqlite://host/x.db", "sqlite:///", "mysql:///x"):
        with pytest.raises(InvalidArgument):
            parse_url(bad)
    with pytest.raises(InvalidArgument, match="synchronous"):
        SQLiteStore("sqlite:///x.db?synchronous=sometimes")


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO workflows (name, seen_at) VALUES ('holder', 0)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


@contextlib.contextmanager
def holding_lock(db: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the write lock of `db` for `seconds`."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield holder
        holder.wait(timeout=10)


async def test_another_process_holding_the_write_lock_is_waited_for(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    engine = Engine(f"sqlite:///{db}", poll_interval=0.01)

    @engine.workflow()
    async def flow(ctx: Context) -> str:
        await ctx.approval("ok")
        return "done"

    async with engine:
        run = await engine.start(flow)
        await engine.settle(run.id)
        with holding_lock(db, 0.5) as holder:
            started = time.monotonic()
            decision = await engine.approve(run.id, "ok", by="alice")  # must wait, not fail
            waited = time.monotonic() - started
            assert decision.approved
            assert await engine.result(run.id, timeout=10) == "done"
    assert holder.returncode == 0
    assert waited > 0.2  # it really met the lock
    names = sqlite3.connect(db).execute("SELECT name FROM workflows").fetchall()
    assert ("holder",) in names  # the other process's write landed too


async def test_reads_are_not_blocked_by_another_writer(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    engine = Engine(f"sqlite:///{db}")
    await engine.open()
    try:
        with holding_lock(db, 1.0):
            started = time.monotonic()
            assert await engine.list_runs() == []
            assert time.monotonic() - started < 0.5  # WAL: readers do not wait for writers
    finally:
        await engine.close()


async def test_a_store_used_from_a_second_event_loop_still_works(tmp_path: Path) -> None:
    engine = Engine(f"sqlite:///{tmp_path / 'x.db'}")
    await engine.open()

    def other_loop() -> int:
        return asyncio.run(engine.count_runs())

    results = await asyncio.gather(asyncio.to_thread(other_loop), engine.count_runs())
    assert results == [0, 0]
    await engine.close()


# damaged files, in-memory URLs, missing files ---------------------------------------------


async def _fill(db: Path, runs: int = 300) -> None:
    engine = Engine(f"sqlite:///{db}")

    @engine.workflow()
    async def flow(ctx: Context, n: int) -> int:
        return n

    for n in range(runs):
        await engine.start(flow, n, run_id=f"run-{n:04d}-" + "x" * 40)
    await engine.close()


def _damage(db: Path, from_page: int) -> None:
    """Garbage over every page from `from_page` on; the schema pages stay readable."""
    size = db.stat().st_size
    assert size > from_page * 4096, size
    with db.open("r+b") as f:
        f.seek(from_page * 4096)
        f.write(bytes((n * 131 + 7) % 256 for n in range(size - from_page * 4096)))


@pytest.mark.timeout(20)  # the bug was a hang: the read's failed COMMIT lost the futures
async def test_a_damaged_file_fails_reads_instead_of_hanging(tmp_path: Path) -> None:
    db = tmp_path / "damaged.db"
    await _fill(db)
    _damage(db, from_page=db.stat().st_size // 4096 // 2)
    engine = Engine(f"sqlite:///{db}")
    try:
        for _ in range(2):  # and the store is still usable for the next call
            with pytest.raises(StoreError, match=r"malformed.*restore it from a backup"):
                await asyncio.wait_for(engine.list_runs(limit=1000), 10)
        with pytest.raises(StoreError):
            await asyncio.wait_for(
                asyncio.gather(*(engine.count_runs() for _ in range(5)), engine.list_runs()), 10
            )
    finally:
        await engine.close()


async def test_garbage_instead_of_a_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "garbage.db"
    db.write_bytes(b"this is not a database " * 400)
    engine = Engine(f"sqlite:///{db}")
    with pytest.raises(StoreUnavailable, match=r"garbage\.db' is damaged or not a database"):
        await asyncio.wait_for(engine.list_runs(), 10)
    await engine.close()


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite:///file::memory:?cache=shared"])
def test_in_memory_databases_are_refused_at_engine(url: str) -> None:
    with pytest.raises(InvalidArgument, match="in-memory databases are not supported"):
        Engine(url)


async def test_require_existing_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "absent.db"
    engine = Engine(f"sqlite:///{db}")
    with pytest.raises(DatabaseNotFound, match=r"no SQLite database at '.*absent\.db'"):
        await engine.require_database()
    assert not db.exists()
    db.write_bytes(b"")  # what a stray sqlite3.connect leaves: still no database
    with pytest.raises(DatabaseNotFound):
        await engine.require_database()
    await engine.open()
    await engine.require_database()
    await engine.close()
