"""Which engine a command uses: the app's (`--app module:engine`) or one on `--db`.

Commands that only read or decide never create a database: on a missing SQLite file
they fail with `DatabaseNotFound`, so a wrong path is an error, not a new empty
database that answers "no run".
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from signoff import errors
from signoff.cli import core
from signoff.engine import Engine

T = TypeVar("T")


def load_app(app: str) -> Engine:
    """Import `module:attr` (attr may be dotted) from the current directory, like uvicorn."""
    module_name, _, attr = app.partition(":")
    if not module_name or not attr:
        raise errors.AppImportError(f'APP must look like "module:engine", got {app!r}')
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    found: Any = _import(module_name, app)
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise errors.AppImportError(
                f"module {module_name!r} has no attribute {attr!r} (APP {app!r})"
            ) from None
    if not isinstance(found, Engine):
        raise errors.AppImportError(f"{app!r} is a {type(found).__name__}, not a signoff Engine")
    return found


def _import(module_name: str, app: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise errors.AppImportError(
                f"cannot import {module_name!r} for APP {app!r}: {exc}; run from the folder "
                "that holds it or add that folder to PYTHONPATH"
            ) from None
        raise errors.AppImportError(f"importing {module_name!r} failed: {exc!r}") from None
    except Exception as exc:
        raise errors.AppImportError(f"importing {module_name!r} failed: {exc!r}") from None


def app_engine(app: str) -> Engine:
    """The app's engine, pointed at `--db` when one was given explicitly."""
    engine = load_app(app)
    settings = core.settings()
    if settings.db_explicit and engine.url != settings.db:
        engine.configure(url=settings.db)
    return engine


def engine() -> Engine:
    """The engine of `--app` if given, else a plain one on `--db` (or the default)."""
    settings = core.settings()
    if settings.app is not None:
        return app_engine(settings.app)
    return Engine(settings.db)


def with_engine(
    fn: Callable[[Engine], Awaitable[T]], eng: Engine | None = None, *, create: bool = False
) -> T:
    """Run `fn(engine)` on a fresh event loop, closing the engine afterwards. Unless
    `create`, a database that does not exist yet is an error, not created."""

    async def go() -> T:
        used = eng if eng is not None else engine()
        try:
            if not create:
                await used.require_database()
            return await fn(used)
        finally:
            await used.close()

    return asyncio.run(go())
