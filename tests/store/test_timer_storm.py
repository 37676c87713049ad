"""Timer storms: many approval deadlines in the same second, fired by the worker in
batches (prefetched reads, a bounded share of the worker's slots), on every backend.
Small N; no speed is asserted (bench/timers.py measures it)."""

from __future__ import annotations

import asyncio
from typing import Any

from signoff import Context, Engine, idempotency_key, worker
from signoff.store import sql_approval_timers, sql_approvals, sql_audit
from signoff.store.sql import Query, Result
from signoff.testing import FakeClock

N = 3 * worker.TIMER_BATCH + 5  # several batches, the last one short


def storm_engine(url: str, clock: FakeClock, effects: dict[str, int], **kw: Any) -> Engine:
    eng = Engine(url, clock=clock, poll_interval=0.01, lease="5s", **kw)

    async def effect(outcome: str) -> str:
        key = idempotency_key()
        effects[key] = effects.get(key, 0) + 1
        return outcome

    @eng.workflow(name="storm")
    async def storm(ctx: Context, quorum: int) -> str:
        decision = await ctx.approval("ok", timeout=60, quorum=quorum, approvers=["a", "b", "c"])
        return await ctx.step(effect, str(decision.status))

    return eng


async def until_finished(eng: Engine, ids: list[str]) -> dict[str, Any]:
    return {r: await eng.result(r, timeout=30) for r in ids}


async def test_a_storm_expires_every_approval_once(store_url: str, clock: FakeClock) -> None:
    effects: dict[str, int] = {}
    eng = storm_engine(store_url, clock, effects, concurrency=64)
    try:
        async with eng:
            ids = [(await eng.start("storm", 2 if i % 7 == 0 else 1)).id for i in range(N)]
            for r in ids:
                await eng.settle(r)
            voted = ids[::7]  # quorum 2, one vote in: the expiry keeps the vote
            for r in voted:
                await eng.approve(r, "ok", by="a")
            clock.advance(61)  # every deadline passed at once: the worker's poll fires them
            results = await until_finished(eng, ids)
        assert set(results.values()) == {"expired"}
        assert len(effects) == N and set(effects.values()) == {1}
        for r in ids:
            (approval,) = await eng.approvals(r)
            assert approval.status.value == "expired"
            history = [e.type for e in await eng.history(r)]
            assert history.count("approval_expired") == 1, history
            if r in voted:
                assert [v.by for v in approval.votes] == ["a"]
        assert (await eng.verify_audit()).problems == []
    finally:
        await eng.close()


async def test_decisions_racing_a_storm_win_or_find_it_expired(
    store_url: str, clock: FakeClock
) -> None:
    effects: dict[str, int] = {}
    eng = storm_engine(store_url, clock, effects, concurrency=32)
    try:
        async with eng:
            ids = [(await eng.start("storm", 1)).id for _ in range(N)]
            for r in ids:
                await eng.settle(r)
            clock.advance(61)

            async def decide(r: str) -> str:
                try:
                    return (await eng.approve(r, "ok", by="a")).status.value
                except Exception as exc:  # expired first: a clear refusal
                    return type(exc).__name__

            answers = await asyncio.gather(*(decide(r) for r in ids[::2]))
            results = await until_finished(eng, ids)
        decided = dict(zip(ids[::2], answers, strict=True))
        for r, outcome in results.items():
            if decided.get(r) == "approved":
                assert outcome == "approved"  # the decision came first and won
            else:
                assert outcome == "expired", (r, decided.get(r))
        assert len(effects) == N and set(effects.values()) == {1}
    finally:
        await eng.close()


async def test_a_storm_larger_than_the_timer_slots_fires_in_full(
    store_url: str, clock: FakeClock
) -> None:
    effects: dict[str, int] = {}
    eng = storm_engine(store_url, clock, effects, concurrency=4)  # one timer slot
    try:
        async with eng:
            ids = [(await eng.start("storm", 1)).id for _ in range(2 * worker.TIMER_BATCH)]
            for r in ids:
                await eng.settle(r)
            clock.advance(61)
            results = await until_finished(eng, ids)
            assert eng._worker is not None and not eng._worker._timer_runs
        assert set(results.values()) == {"expired"} and len(effects) == len(ids)
    finally:
        await eng.close()


def first_query(op: Any) -> Query:
    query: Query = next(op)
    op.close()
    return query


def test_the_prefetched_reads_are_the_reads_the_timers_make() -> None:
    assert first_query(sql_approval_timers.fire_timer("r", "k", 1, 0.0)).sql == (
        sql_approval_timers.PENDING_ROUND
    )
    assert first_query(sql_approvals.votes_of("r", "k", 1)).sql == sql_approval_timers.VOTES
    head = first_query(sql_audit.append("r", 0.0, "t", None, "{}"))
    assert head.sql == sql_approval_timers.AUDIT_HEAD and tuple(head.params) == ("r",)


def test_answering_answers_each_prefetched_read_once() -> None:
    def op() -> Any:
        a = yield Query("SELECT 1", (1,))
        b = yield Query("SELECT 1", (1,))
        yield Query("UPDATE x", (1,), wait=False)
        return a.rows, b.rows

    answers = {("SELECT 1", (1,)): [("cached",)]}
    gen = sql_approval_timers.answering(op(), answers)
    assert next(gen) == Query("SELECT 1", (1,))  # the second read goes to the database
    assert gen.send(Result([("db",)], 1)) == Query("UPDATE x", (1,), wait=False)
    try:
        gen.send(Result([], 0))
    except StopIteration as stop:
        assert stop.value == ([("cached",)], [("db",)])
    assert answers == {}


async def test_an_expiry_in_a_batch_writes_what_one_timer_alone_writes(
    store_url: str, clock: FakeClock, monkeypatch: Any
) -> None:
    """Half the storm expires through the batch's multi-row statements, half through
    `fire_timer` one by one (as escalations and reminders do): the approvals, journals,
    history and audit chains of the two halves are the same (but for the proposed values
    and their digests)."""
    effects: dict[str, int] = {}
    eng = storm_engine(store_url, clock, effects, concurrency=64)
    alone: set[str] = set()
    batched = sql_approval_timers._on_timeout
    monkeypatch.setattr(
        sql_approval_timers,
        "_on_timeout",
        lambda r: "one by one" if r.proposed == '"alone"' else batched(r),
    )
    try:
        async with eng:

            @eng.workflow(name="storm_proposed")
            async def proposed(ctx: Context, value: str) -> str:
                d = await ctx.approval("ok", timeout=60, quorum=2, approvers=["a", "b"],
                                       proposed=value)  # fmt: skip
                return str(d.status)

            ids = [(await eng.start("storm_proposed", "alone" if i % 2 else "x")).id
                   for i in range(2 * worker.TIMER_BATCH)]  # fmt: skip
            for r in ids:
                await eng.settle(r)
                await eng.approve(r, "ok", by="a")  # one vote of two: kept by the expiry
            alone = set(ids[1::2])
            clock.advance(61)
            await until_finished(eng, ids)

            async def seen(r: str) -> Any:
                (approval,) = await eng.approvals(r)
                journal = [(e.kind, e.status, e.result) for e in await eng.store.get_journal(r)]
                history = [
                    (e.type, e.actor, {k: v for k, v in e.data.items() if k != "digest"})
                    for e in await eng.history(r)
                ]
                chain = [(e.seq, e.type, e.actor, e.data) async for e in eng.audit_log(r)]
                shape = (approval.status, approval.decided_by, [v.by for v in approval.votes])
                return repr((shape, journal, history, chain)).replace("alone", "x")

            one = [await seen(r) for r in ids if r in alone]
            many = [await seen(r) for r in ids if r not in alone]
        assert "EXPIRED" in one[0] and "approval_expired" in one[0]
        assert all(s == one[0] for s in one) and all(s == one[0] for s in many)
        assert (await eng.verify_audit()).problems == []
    finally:
        await eng.close()


def io_engine(url: str, clock: FakeClock, inside: list[int], gate: asyncio.Event) -> Engine:
    """Workflows that sleep, then spend long in I/O (a step that waits on `gate`);
    `inside[0]` counts the steps under way, `inside[1]` the most at once."""
    eng = Engine(url, clock=clock, poll_interval=0.01, lease="5s", concurrency=16)

    async def io(i: int) -> int:
        inside[0] += 1
        inside[1] = max(inside[1], inside[0])
        try:
            await gate.wait()
        finally:
            inside[0] -= 1
        return i

    @eng.workflow(name="sleeper")
    async def sleeper(ctx: Context, i: int) -> int:
        await ctx.sleep(60)
        return await ctx.step(io, i)

    @eng.workflow(name="busy")
    async def busy(ctx: Context) -> int:
        return await ctx.step(io, -1)

    return eng


async def sleeping(eng: Engine, n: int = 8) -> list[str]:
    """Start `n` sleepers and let each reach its sleep."""
    ids = [(await eng.start("sleeper", i)).id for i in range(n)]
    for r in ids:
        await eng.settle(r)
    return ids


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_runs_woken_from_sleep_take_the_free_slots_when_nothing_else_runs(
    store_url: str, clock: FakeClock
) -> None:
    inside, gate = [0, 0], asyncio.Event()
    eng = io_engine(store_url, clock, inside, gate)
    try:
        async with eng:
            ids = await sleeping(eng)
            clock.advance(61)
            await until(lambda: inside[0] == 8)  # all in their I/O at once, not one (1/16)
            gate.set()
            assert [await eng.result(r, timeout=30) for r in ids] == list(range(8))
    finally:
        await eng.close()


async def test_woken_runs_keep_to_their_share_while_other_runs_execute(
    store_url: str, clock: FakeClock
) -> None:
    inside, gate = [0, 0], asyncio.Event()
    eng = io_engine(store_url, clock, inside, gate)
    try:
        async with eng:
            ids = await sleeping(eng)
            other = (await eng.start("busy")).id  # executes (in its I/O) during the storm
            await until(lambda: inside[0] == 1)
            clock.advance(61)
            await asyncio.sleep(0.5)
            assert inside[1] == 2  # the busy run and one woken run (1/16 of 16 slots)
            gate.set()
            assert [await eng.result(r, timeout=30) for r in ids] == list(range(8))
            assert await eng.result(other, timeout=30) == -1
    finally:
        await eng.close()
