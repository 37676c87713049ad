"""What only the PostgreSQL store does: row locks between processes, NOTIFY wake-ups,
migrations under an advisory lock, refusal of a newer schema, error wrapping."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from signoff import Context, Engine, RunStatus, errors
from signoff.journal import EntryKind, EntryStatus, JournalEntry
from signoff.models import DecisionStatus
from signoff.store import schema
from signoff.store.base import LeaseLost, WaitRequest
from signoff.store.postgres import PostgresStore
from signoff.store.sql import Op, Query
from signoff.testing import FakeClock
from tests.pg_fixtures import fresh_database

pytestmark = pytest.mark.postgres

NOW = 1_800_000_000.0


async def _create(store: PostgresStore, n: int, workflow: str = "wf") -> list[str]:
    ids = [f"run-{i:03d}" for i in range(n)]
    for run_id in ids:
        await store.create_run(
            run_id=run_id,
            workflow=workflow,
            input_json='{"args":[]}',
            requested_by=None,
            now=NOW,
            claim_for=None,
            lease_until=0.0,
        )
    return ids


async def test_concurrent_claims_from_two_stores_never_share_a_run(pg_url: str) -> None:
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    try:
        ids = await _create(a, 60)

        async def drain(store: PostgresStore, owner: str) -> list[str]:
            got: list[str] = []
            while True:
                claims = await store.claim_runnable(
                    owner=owner, workflows=["wf"], limit=3, now=NOW, lease_until=NOW + 30
                )
                if not claims:
                    return got
                got += [c.run.id for c in claims]

        got_a, got_b = await asyncio.gather(drain(a, "a"), drain(b, "b"))
        assert not set(got_a) & set(got_b)
        assert sorted(got_a + got_b) == ids
        run = await a.get_run(ids[0])
        assert run.status is RunStatus.RUNNING
    finally:
        await a.close()
        await b.close()


async def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced(pg_url: str) -> None:
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    try:
        [run_id] = await _create(a, 1)
        [first] = await a.claim_runnable(
            owner="a", workflows=["wf"], limit=5, now=NOW, lease_until=NOW + 1
        )
        # still leased: nobody else may take it
        assert (
            await b.claim_runnable(
                owner="b", workflows=["wf"], limit=5, now=NOW + 0.5, lease_until=NOW + 1.5
            )
            == []
        )
        [second] = await b.claim_runnable(
            owner="b", workflows=["wf"], limit=5, now=NOW + 2, lease_until=NOW + 3
        )
        assert second.run.id == run_id and second.fence == first.fence + 1
        entry = JournalEntry(
            seq=0, kind=EntryKind.STEP, name="s", status=EntryStatus.DONE, result="1"
        )
        with pytest.raises(LeaseLost):
            await a.record_step(
                run_id=run_id, fence=first.fence, entry=entry, attempts=1, extra=[], now=NOW + 2
            )
        with pytest.raises(LeaseLost):
            await a.finish_run(
                run_id=run_id,
                fence=first.fence,
                status="completed",
                result_json="1",
                error=None,
                extra=[],
                now=NOW + 2,
            )
        await b.record_step(
            run_id=run_id, fence=second.fence, entry=entry, attempts=1, extra=[], now=NOW + 2
        )
        assert [e.seq for e in await b.get_journal(run_id)] == [0]
        # the old holder's heartbeat does not steal the lease back
        assert await a.heartbeat(owner="a", lease_until=NOW + 100) == 0
    finally:
        await a.close()
        await b.close()


async def test_each_timer_fires_once_across_concurrent_workers(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(3)]
    try:
        ids = await _create(stores[0], 40)
        claims = await stores[0].claim_runnable(
            owner="w", workflows=["wf"], limit=40, now=NOW, lease_until=NOW + 30
        )
        for claim in claims:
            outcome = await stores[0].open_wait(
                run_id=claim.run.id,
                fence=claim.fence,
                extra=[],
                now=NOW,
                wait=WaitRequest(kind=EntryKind.SLEEP, seq=0, name="sleep", deadline=NOW + 5),
            )
            assert not outcome.resolved

        async def fire(store: PostgresStore, owner: str) -> list[str]:
            fired: list[str] = []
            while True:
                got = await store.fire_timers(
                    now=NOW + 10, limit=4, claim_for=owner, lease_until=NOW + 40
                )
                if not got:
                    return fired
                fired += [c.run.id for c in got]

        results = await asyncio.gather(*[fire(s, f"w{i}") for i, s in enumerate(stores)])
        fired = [run_id for r in results for run_id in r]
        assert sorted(fired) == ids  # each once, none missed
        for run_id in ids[:5]:
            types = [e.type for e in await stores[1].history(run_id)]
            assert types.count("timer_fired") == 1
    finally:
        for s in stores:
            await s.close()


async def test_a_new_run_wakes_an_idle_worker_in_another_engine_without_polling(
    pg_url: str,
) -> None:
    worker = Engine(pg_url, poll_interval="60s", lease="5s")
    client = Engine(pg_url, poll_interval=0.01)

    @worker.workflow(name="greet")
    async def greet(ctx: Context, name: str) -> str:
        d = await ctx.approval("ok")
        return f"hello {name} ({d.status.value})"

    try:
        async with worker:
            await asyncio.sleep(0.2)  # the worker has polled once and now sleeps 60 s
            run = await client.start("greet", "ada")
            # only a NOTIFY can get it executed this soon (the worker polls every 60 s)
            assert (await client.settle(run.id, timeout=15)).status is RunStatus.WAITING
            await client.approve(run.id, "ok", by="bob")
            assert await client.result(run.id, timeout=15) == "hello ada (approved)"
    finally:
        await client.close()


async def test_migrating_twice_at_once_is_safe(pg_template: str) -> None:
    with fresh_database(None) as url:
        stores = [PostgresStore(url) for _ in range(4)]
        try:
            await asyncio.gather(*[s.open() for s in stores])
            assert await stores[0].schema_version() == schema.latest("postgres")
            with psycopg.connect(url) as conn:
                rows = conn.execute("SELECT version FROM schema_version").fetchall()
            assert [r[0] for r in rows] == [v for v, _ in schema.migrations("postgres")]
        finally:
            for s in stores:
                await s.close()


async def test_a_newer_schema_is_refused_with_a_clear_message(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (9999)")
    store = PostgresStore(pg_url)
    try:
        with pytest.raises(errors.SchemaVersionError, match=r"version 9999.*upgrade signoff"):
            await store.open()
        engine = Engine(pg_url)
        with pytest.raises(errors.SchemaVersionError):
            await engine.start("anything")
        await engine.close()
    finally:
        await store.close()


async def test_unreachable_server_is_store_unavailable_with_its_cause() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:9/test?connect_timeout=1")
    try:
        with pytest.raises(errors.StoreUnavailable, match="cannot connect") as info:
            await store.open()
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
        assert info.value.code == "store_unavailable"
    finally:
        await store.close()


async def test_database_errors_are_store_errors_with_their_cause(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        await store.open()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE runs RENAME TO runs_gone")
        with pytest.raises(errors.StoreError, match="PostgreSQL error") as info:
            await store.get_run("x")
        assert isinstance(info.value.__cause__, psycopg.errors.UndefinedTable)
        assert not isinstance(info.value, errors.StoreUnavailable)
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://h/db?pool_size=0",
        "postgresql://h/db?retry_for=soon",
    ],
)
def test_bad_url_options_are_refused(url: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        PostgresStore(url)


async def test_one_store_serves_several_event_loops(pg_url: str) -> None:
    clock = FakeClock(start=NOW)
    engine = Engine(pg_url, clock=clock)

    @engine.workflow(name="double")
    async def double(ctx: Context, n: int) -> int:
        return n * 2

    try:
        run = await engine.start("double", 21)

        def other_loop() -> str:
            return asyncio.run(engine.get_run(run.id)).workflow

        assert await asyncio.to_thread(other_loop) == "double"
        async with engine:
            assert await engine.result(run.id, timeout=10) == 42
        assert json.loads(json.dumps((await engine.get_run(run.id)).result)) == 42
    finally:
        await engine.close()


async def test_a_fence_checked_in_the_pipeline_fails_its_operation_alone(pg_url: str) -> None:
    """Fence checks go out without waiting for their answer; one that fails must still
    fail its operation before anything of it commits, and not the operations that shared
    its batch (the batch runs again one by one)."""
    store = PostgresStore(pg_url)
    try:
        ids = await _create(store, 3)
        claims = await store.claim_runnable(
            owner="w", workflows=["wf"], limit=3, now=NOW, lease_until=NOW + 30
        )
        fences = {c.run.id: c.fence for c in claims}
        entry = JournalEntry(
            seq=0, kind=EntryKind.STEP, name="s", status=EntryStatus.DONE, result="1"
        )
        stale, good, waiting = ids

        async def step(run_id: str, fence: int) -> None:
            await store.record_step(
                run_id=run_id, fence=fence, entry=entry, attempts=1, extra=[], now=NOW + 1
            )

        async def approval(run_id: str, fence: int) -> object:
            request = WaitRequest(
                kind=EntryKind.APPROVAL, seq=0, name="ok", summary="Refund", deadline=None
            )
            return await store.open_wait(
                run_id=run_id, fence=fence, extra=[], now=NOW + 1, wait=request
            )

        gathered = asyncio.gather(  # in one loop iteration: one batch
            step(stale, fences[stale] - 1), step(good, fences[good]), return_exceptions=True
        )
        lost, stepped = await gathered
        assert isinstance(lost, LeaseLost) and stepped is None
        with pytest.raises(LeaseLost):
            await approval(waiting, fences[waiting] - 1)
        assert await store.get_journal(stale) == []
        assert await store.get_journal(waiting) == []
        assert [e.seq for e in await store.get_journal(good)] == [0]
        # the same fences, right: the approval opens, its run row read ahead
        outcome = await approval(waiting, fences[waiting])
        assert not outcome.resolved  # type: ignore[attr-defined]
        [opened] = await store.get_journal(waiting)
        assert opened.status is EntryStatus.OPEN

        # A decision claims its run and reads the run's journal last: that read is
        # answered with the commit. Beside a fence that fails, in one batch, it runs
        # again alone and comes back whole; the stale step keeps nothing.
        decide = store.decide(
            run_id=waiting,
            key="ok",
            status=DecisionStatus.APPROVED,
            value_json=None,
            by="manager",
            reason=None,
            now=NOW + 2,
            claim_for="w",
            lease_until=NOW + 60,
        )
        decided, lost = await asyncio.gather(
            decide, step(good, fences[good] - 1), return_exceptions=True
        )
        assert isinstance(lost, LeaseLost)
        assert decided.outcome == "decided", decided  # type: ignore[union-attr]
        claim = decided.claim  # type: ignore[union-attr]
        assert claim is not None and claim.fence == fences[waiting] + 1
        assert [(e.seq, e.status) for e in claim.journal] == [(0, EntryStatus.DONE)]
        assert [e.seq for e in await store.get_journal(good)] == [0]
    finally:
        await store.close()


async def test_an_operation_that_goes_on_after_its_last_read_fails(pg_url: str) -> None:
    """`Query.last` promises that the operation yields nothing after that read (its
    answer comes with the commit); one that breaks the promise fails loudly, and the
    statements it sent before are the batch's, committed with it."""
    store = PostgresStore(pg_url)
    try:
        [run_id] = await _create(store, 1)

        def broken() -> Op[None]:
            yield Query("UPDATE runs SET requested_by = ? WHERE id = ?", ("ann", run_id))
            yield Query("SELECT id FROM runs WHERE id = ?", (run_id,), last=True)
            yield Query("SELECT 1")

        with pytest.raises(RuntimeError, match="after a last read"):
            await store._write(broken)
        assert (await store.get_run(run_id)).requested_by == "ann"  # type: ignore[union-attr]
    finally:
        await store.close()


def test_a_store_outlives_the_event_loop_that_opened_it(pg_url: str) -> None:
    """Operations run on the loop that opened the store; if that loop ends without
    closing it, the next caller's loop becomes its home and the store opens anew."""
    store = PostgresStore(pg_url)
    [run_id] = asyncio.run(_create(store, 1))  # opened here, never closed

    async def later() -> str:
        try:
            return (await store.get_run(run_id)).id
        finally:
            await store.close()

    assert asyncio.run(later()) == run_id
