"""Version pinning: a run goes on with the version of its workflow it started on while an
engine keeps that version registered; new runs take the version registered last. On
every backend."""

from __future__ import annotations

import pytest

from signoff import Context, Engine, InvalidArgument
from signoff.testing import FakeClock


def calc(n: int) -> int:
    return n * 2


async def order_v1(ctx: Context, n: int) -> str:
    d = await ctx.approval("ok", proposed={"n": n})
    return f"v1 {d.status.value}"


async def order_v2(ctx: Context, n: int) -> str:
    doubled = await ctx.step(calc, n)  # a new step before the approval: v1 runs would not replay
    d = await ctx.approval("ok", proposed={"n": doubled})
    return f"v2 {d.status.value} {doubled}"


def make(url: str, clock: FakeClock, *versions: str) -> Engine:
    engine = Engine(url, clock=clock, poll_interval=0.01, lease="5s")
    code = {"1": order_v1, "2": order_v2}
    for v in versions:
        engine.workflow("order", version=v)(code[v])
    return engine


async def test_runs_go_on_with_the_version_they_started_on(
    store_url: str, clock: FakeClock
) -> None:
    first = make(store_url, clock, "1")
    async with first:
        old = await first.start("order", 3)
        assert old.version == "1"
        await first.settle(old.id)
    both = make(store_url, clock, "1", "2")  # the deploy keeps v1 for the runs that need it
    async with both:
        new = await both.start("order", 5)
        assert new.version == "2"
        await both.settle(new.id)
        await both.approve(old.id, "ok", by="ann")
        await both.approve(new.id, "ok", by="ann")
        assert await both.result(old.id, timeout=10) == "v1 approved"
        assert await both.result(new.id, timeout=10) == "v2 approved 10"
        assert (await both.get_run(old.id)).version == "1"
        started = [e for e in await both.history(new.id) if e.type == "run_started"]
        assert started[0].data == {"workflow": "order", "version": "2"}
        assert (await both.check()).broken == []


async def test_a_version_no_longer_kept_blocks_until_it_is_registered_again(
    store_url: str, clock: FakeClock
) -> None:
    first = make(store_url, clock, "1")
    async with first:
        old = await first.start("order", 3)
        await first.settle(old.id)
    only_new = make(store_url, clock, "2")
    async with only_new:
        assert [b.run_id for b in (await only_new.check()).broken] == [old.id]
        await only_new.approve(old.id, "ok", by="ann")
        assert (await only_new.settle(old.id)).status == "blocked"
    fixed = make(store_url, clock, "1", "2")
    async with fixed:  # a worker re-checks blocked runs at start-up
        assert await fixed.result(old.id, timeout=10) == "v1 approved"


async def test_bad_versions_are_refused(engine: Engine) -> None:
    engine.workflow("order", version="1")(order_v1)
    engine.workflow("order", version="1")(order_v1)  # the same code again changes nothing
    with pytest.raises(InvalidArgument, match="version '1' is already registered"):
        engine.workflow("order", version="1")(order_v2)
    with pytest.raises(InvalidArgument, match="non-empty string"):
        engine.workflow("other", version="")(order_v1)
    engine.workflow("plain")(order_v1)
    with pytest.raises(InvalidArgument, match="'plain' is already registered"):
        engine.workflow("plain")(order_v2)
