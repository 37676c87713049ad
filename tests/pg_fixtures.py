"""PostgreSQL for tests: the server at 127.0.0.1:5432 (trust auth), one fresh database per
test, cloned from a template migrated once per session.

`SIGNOFF_TEST_POSTGRES` overrides the server URL (its database is used only to connect
for CREATE/DROP DATABASE). When the server is unreachable, tests that need it skip with a
one-line reason, or fail when CI=true.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import getpass
import itertools
import os
import uuid
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from signoff.store.postgres import PostgresStore

_PREFIX = "signoff_t"
_counter = itertools.count()


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def _candidates() -> list[str]:
    explicit = os.environ.get("SIGNOFF_TEST_POSTGRES")
    if explicit:
        return [explicit]
    users = ["postgres", getpass.getuser()]
    return [f"postgresql://{u}@127.0.0.1:5432/test" for u in dict.fromkeys(users)]


def with_database(url: str, dbname: str, query: str = "") -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, query, ""))


def admin_url() -> str:
    """The first candidate server URL that accepts a connection; skip (or fail) if none."""
    global _admin
    if _admin is not None:
        if isinstance(_admin, Exception):
            _unreachable(_admin)
        return _admin
    last: Exception | None = None
    for url in _candidates():
        try:
            with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SELECT 1")
            _admin = url
            return url
        except psycopg.Error as exc:
            last = exc
    assert last is not None
    _admin = last
    _unreachable(last)


_admin: str | Exception | None = None


def _unreachable(exc: Exception) -> NoReturn:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    where = urlsplit(_candidates()[0])
    reason = f"PostgreSQL at {where.hostname}:{where.port or 5432} is unreachable: {first}"
    if in_ci():
        pytest.fail(reason + " (CI=true: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason)


def admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(admin_url(), autocommit=True)


def _drop_stale(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Drop test databases left by sessions that died (their pid is gone)."""
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", (_PREFIX + "%",)
    ).fetchall()
    for (name,) in rows:
        parts = str(name).split("_")
        try:
            pid = int(parts[2])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            continue  # still alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        with contextlib.suppress(psycopg.Error):
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
            )


def create_template() -> str:
    """Create and migrate this session's template database; return its name."""
    name = f"{_PREFIX}_{os.getpid()}_tpl_{uuid.uuid4().hex[:6]}"
    with admin() as conn:
        _drop_stale(conn)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    store = PostgresStore(with_database(admin_url(), name))

    async def migrate() -> None:
        try:
            await store.open()
        finally:
            await store.close()

    asyncio.run(migrate())
    return name


def drop_database(name: str) -> None:
    with admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _create_database(template: str | None) -> str:
    name = f"{_PREFIX}_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    with admin() as conn:
        if template is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
    return name


@contextlib.contextmanager
def fresh_database(template: str | None, query: str = "") -> Iterator[str]:
    """A new database (a copy of `template`, or empty); yields its URL, drops it after."""
    name = _create_database(template)
    try:
        yield with_database(admin_url(), name, query)
    finally:
        drop_database(name)


class _Databases:
    """Copies of the template, one made ahead while a test runs; dropped in the
    background (CREATE/DROP DATABASE take a noticeable fraction of a short test)."""

    def __init__(self, template: str) -> None:
        self.template = template
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "pg-databases")
        self._next: concurrent.futures.Future[str] | None = None

    def take(self) -> str:
        ready = self._next or self._executor.submit(_create_database, self.template)
        self._next = self._executor.submit(_create_database, self.template)
        return ready.result()

    def give_back(self, name: str) -> None:
        self._executor.submit(drop_database, name)

    def close(self) -> None:
        if self._next is not None:
            with contextlib.suppress(Exception):
                self.give_back(self._next.result())
        self._executor.shutdown(wait=True)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    admin_url()
    name = create_template()
    yield name
    drop_database(name)


@pytest.fixture(scope="session")
def _pg_databases(pg_template: str) -> Iterator[_Databases]:
    databases = _Databases(pg_template)
    yield databases
    databases.close()


@pytest.fixture
def pg_url(_pg_databases: _Databases) -> Iterator[str]:
    """URL of a fresh, migrated database for this test."""
    name = _pg_databases.take()
    try:
        yield with_database(admin_url(), name)
    finally:
        _pg_databases.give_back(name)
