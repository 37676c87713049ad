"""Persistence backends behind one contract (`Store`); `open_store(url)` picks one by scheme."""

from __future__ import annotations

from signoff import errors
from signoff.store.base import Store


def open_store(url: str) -> Store:
    """Return the store for `url` (not yet connected): `sqlite:///file.db` or
    `postgresql://user@host/db`. Drivers are imported only when their scheme is used."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from signoff.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in ("postgresql", "postgres"):
        try:
            from signoff.store.postgres import PostgresStore
        except ImportError as exc:
            raise errors.InvalidArgument(
                "PostgreSQL needs the optional extra: pip install 'signoff[postgres]'"
            ) from exc
        return PostgresStore(url)
    raise errors.InvalidArgument(
        f"unsupported database URL {url!r}; use sqlite:///path.db or postgresql://user@host/db"
    )


__all__ = ["Store", "open_store"]
