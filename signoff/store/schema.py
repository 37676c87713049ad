"""Schema migrations: numbered `.sql` files per dialect, shipped as package data.

`schema_version` holds every applied version. Migrating is one operation (one
transaction); a database newer than this code is refused with `SchemaVersionError`.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from signoff import errors
from signoff.store.sql import Op, Query

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@functools.cache
def migrations(dialect: str) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """(version, statements) for every migration file of `dialect`, in order."""
    folder = resources.files("signoff.store") / "migrations" / dialect
    found = []
    for item in folder.iterdir():
        match = _NAME.match(item.name)
        if match:
            text = item.read_text(encoding="utf-8")
            statements = tuple(s.strip() for s in text.split(";\n") if s.strip())
            found.append((int(match.group(1)), statements))
    return tuple(sorted(found))


def latest(dialect: str) -> int:
    return migrations(dialect)[-1][0]


def migrate(dialect: str) -> Op[tuple[int, int]]:
    """Apply the missing migrations; return (version before, version after)."""
    yield Query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
    res = yield Query("SELECT version FROM schema_version")
    applied = {row[0] for row in res.rows}
    current = max(applied, default=0)
    newest = latest(dialect)
    if current > newest:
        raise errors.SchemaVersionError(
            f"the database schema is at version {current}, but this signoff knows only up to "
            f"{newest}; upgrade signoff before running it against this database"
        )
    for version, statements in migrations(dialect):
        if version not in applied:  # also one numbered below a later one already applied
            for statement in statements:
                yield Query(statement.rstrip(";"))
            yield Query("INSERT INTO schema_version (version) VALUES (?)", (version,))
    return current, newest


def current_version() -> Op[int]:
    res = yield Query("SELECT MAX(version) FROM schema_version")
    return int(res.rows[0][0] or 0)
