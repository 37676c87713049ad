"""Shortened run ids: any unique prefix of at least 6 characters names a run, on every
backend; a full id always does, however short."""

from __future__ import annotations

import pytest

from signoff import Context, Engine
from signoff.errors import AmbiguousRunId, InvalidArgument, RunNotFound


async def _start(engine: Engine, *ids: str) -> None:
    @engine.workflow()
    async def noop(ctx: Context) -> None:
        return None

    for run_id in ids:
        await engine.start(noop, run_id=run_id)


async def test_a_unique_prefix_resolves_to_the_full_id(engine: Engine) -> None:
    await _start(engine, "6f1c2a9e" + "0" * 24, "6f1c77" + "1" * 26, "r1")
    assert await engine.resolve_run_id("6f1c2a") == "6f1c2a9e" + "0" * 24
    assert await engine.resolve_run_id("6f1c2a9e") == "6f1c2a9e" + "0" * 24  # the demo's 8
    assert await engine.resolve_run_id("6f1c77" + "1" * 26) == "6f1c77" + "1" * 26
    assert await engine.resolve_run_id("r1") == "r1"  # a full id, however short


async def test_an_ambiguous_prefix_names_the_candidates(engine: Engine) -> None:
    await _start(engine, "abcdef-one", "abcdef-two", "abcdef-three")
    with pytest.raises(AmbiguousRunId, match="'abcdef' is the start of several run ids") as exc:
        await engine.resolve_run_id("abcdef")
    assert len(exc.value.candidates) == 3
    assert await engine.resolve_run_id("abcdef-t" + "wo") == "abcdef-two"


async def test_too_short_unknown_and_case(engine: Engine) -> None:
    await _start(engine, "abcdef123456", "ABCDEF999999", "x%_yz-run")
    with pytest.raises(RunNotFound, match="needs 6 characters or more"):
        await engine.resolve_run_id("abcde")
    with pytest.raises(RunNotFound, match=r"no run with id 'zzzzzz'$"):
        await engine.resolve_run_id("zzzzzz")
    # case matters on both backends (SQLite's LIKE would not)
    assert await engine.resolve_run_id("ABCDEF") == "ABCDEF999999"
    # LIKE wildcards are plain characters
    with pytest.raises(RunNotFound):
        await engine.resolve_run_id("x_%yz-")
    assert await engine.resolve_run_id("x%_yz-") == "x%_yz-run"
    with pytest.raises(InvalidArgument):
        await engine.resolve_run_id("")
