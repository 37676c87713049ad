"""Shared fixtures: a store URL per backend, and an engine on it.

`store_url` is parametrized over every backend, so a test that takes it (or `engine`)
runs against each. PostgreSQL tests use the server at 127.0.0.1:5432 (database `test`,
trust auth) and get a fresh database each, cloned from a migrated template; when the
server is unreachable they skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from signoff import Engine
from signoff.testing import FakeClock
from tests.pg_fixtures import _pg_databases, pg_template, pg_url  # noqa: F401 - fixtures

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'signoff.db'}"
    elif request.param == "postgres":
        yield request.getfixturevalue("pg_url")
    else:  # pragma: no cover
        raise AssertionError(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
async def engine(store_url: str, clock: FakeClock) -> AsyncIterator[Engine]:
    eng = Engine(store_url, clock=clock, poll_interval=0.01, lease="5s")
    yield eng
    await eng.close()


def in_ci() -> bool:
    return os.environ.get("CI") == "true"
