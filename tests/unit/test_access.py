"""`engine.access`: the HTTP plumbing the engine holds; the old spellings warn for a release."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import signoff
from signoff import Context, Engine, HistoryEntry, access, models
from signoff.testing import FakeClock


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = Engine(f"sqlite:///{tmp_path / 'access.db'}", clock=FakeClock(start=1_800_000_000.0))

    @eng.workflow(name="hello")
    async def hello(ctx: Context) -> str:
        return "hi"

    yield eng
    await eng.close()


async def test_the_engine_holds_its_access_and_inherits_none_of_it(engine: Engine) -> None:
    assert isinstance(engine.access, access.Access)
    assert engine.access.store is engine.store and engine.access.clock is engine.clock
    assert not hasattr(access, "ApiSupport") and Engine.__mro__ == (Engine, object)
    for name in ("stored_response", "reserve_response", "use_link", "record_history"):
        assert not hasattr(engine, name), name  # private plumbing: only on engine.access


async def test_a_new_url_gives_a_new_access_on_the_new_store(tmp_path: Path) -> None:
    engine = Engine(f"sqlite:///{tmp_path / 'a.db'}")
    engine.configure(url=f"sqlite:///{tmp_path / 'b.db'}")
    assert engine.access.store is engine.store


async def test_tokens_and_the_history_tail_under_their_new_names(engine: Engine) -> None:
    token, secret = await engine.access.create_token("alice", ["decide"], by="admin")
    assert await engine.access.authenticate(secret) == token
    assert [t.id for t in await engine.access.list_tokens()] == [token.id]
    assert not (await engine.access.revoke_token(token.id)).active
    assert await engine.access.authenticate(secret) is None

    assert await engine.access.last_history_id() == 0
    run = await engine.start("hello")
    entries = await engine.access.history_since(run_id=run.id)
    assert entries and all(isinstance(e, HistoryEntry) for e in entries)
    assert entries == await engine.history(run.id)
    assert await engine.access.last_history_id() == entries[-1].id
    assert await engine.access.history_since(after=entries[-1].id) == []


@pytest.mark.parametrize(
    ("old", "new", "args"),
    [
        ("create_token", "engine.access.create_token", ("bob", ["read"])),
        ("list_tokens", "engine.access.list_tokens", ()),
        ("authenticate", "engine.access.authenticate", ("so_not_a_secret",)),
        ("events", "engine.access.history_since", (0,)),
        ("last_event_id", "engine.access.last_history_id", ()),
    ],
)
async def test_the_old_engine_spellings_still_work_and_warn(
    engine: Engine, old: str, new: str, args: tuple[Any, ...]
) -> None:
    with pytest.warns(DeprecationWarning, match=rf"engine\.{old}\(\) is deprecated; use {new}\(\)"):
        found = await getattr(engine, old)(*args)
    expected = await getattr(engine.access, new.rsplit(".", 1)[1])(*args)
    if old == "create_token":
        assert found[0].name == expected[0].name == "bob"
    else:
        assert found == expected


async def test_old_spellings_keep_their_keywords_and_signatures(engine: Engine) -> None:
    run = await engine.start("hello")
    with pytest.warns(DeprecationWarning):
        events = await engine.events(after_id=0, run_id=run.id, limit=2)
    assert events == (await engine.access.history_since(0, run_id=run.id))[:2]
    with pytest.warns(DeprecationWarning):
        token, _ = await engine.create_token("carol", ["admin"], by="admin")
    with pytest.warns(DeprecationWarning, match="engine.access.revoke_token"):
        assert not (await engine.revoke_token(token.id, by="admin")).active
    assert str(inspect.signature(engine.create_token)) == str(
        inspect.signature(engine.access.create_token)
    )
    assert list(inspect.signature(engine.events).parameters) == ["after_id", "run_id", "limit"]
    assert "engine.access.create_token" in (Engine.create_token.__doc__ or "")


@pytest.mark.parametrize("module", ["signoff", "signoff.models"])
def test_history_event_is_the_deprecated_name_of_history_entry(module: str) -> None:
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=r"HistoryEvent is deprecated; use .*HistoryEntry"):
        assert mod.HistoryEvent is models.HistoryEntry
    with pytest.warns(DeprecationWarning):
        from signoff import HistoryEvent  # noqa: F401
    assert "HistoryEntry" in signoff.__all__ and "HistoryEvent" not in signoff.__all__
    with pytest.raises(AttributeError, match="HistoryThing"):
        _ = mod.HistoryThing
