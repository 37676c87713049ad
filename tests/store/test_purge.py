"""`engine.purge`: finished runs past the cutoff go with every row of theirs (after the
archive has them), unfinished and recent runs stay, the dry run removes nothing, and the
audit record keeps a trace of each removal. On every backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signoff import Context, Engine, InvalidArgument, RunNotFound
from signoff.testing import FakeClock


async def test_purge_removes_only_old_finished_runs_and_archives_them_first(
    engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    @engine.workflow()
    async def ask(ctx: Context, n: int) -> str:
        d = await ctx.approval("ok", proposed={"n": n}, approvers=["ann", "bo"], quorum=2)
        return d.status.value

    @engine.workflow()
    async def boom(ctx: Context) -> None:
        raise RuntimeError("no")

    async with engine:
        done = await engine.start(ask, 1)
        failed = await engine.start(boom)
        waiting = await engine.start(ask, 2)
        for run in (done, failed, waiting):
            await engine.settle(run.id)
        await engine.approve(done.id, "ok", by="ann")
        await engine.approve(done.id, "ok", by="bo")
        await engine.result(done.id, timeout=10)
        await engine.access.reserve_response("ann", "key-1", "h")
        await engine.access.finish_response("ann", "key-1", 200, {"ok": True})
        assert await engine.access.use_link("nonce-1", done.id, "ok", "ann")
        clock.advance("100d")
        recent = await engine.start(ask, 3)
        await engine.cancel(recent.id)

        archive = tmp_path / "archive.jsonl"
        dry = await engine.purge("90d", dry_run=True)
        assert (dry.runs, dry.idempotency_records, dry.link_nonces) == (2, 1, 1)
        assert dry.dry_run and (await engine.get_run(done.id)).status == "completed"

        report = await engine.purge("90d", archive=archive)
        assert (report.runs, report.archived, report.idempotency_records) == (2, 2, 1)
        assert report.link_nonces == 1 and not report.dry_run
        for gone in (done, failed):
            with pytest.raises(RunNotFound):
                await engine.get_run(gone.id)
            with pytest.raises(RunNotFound):
                await engine.history(gone.id)
        assert (await engine.get_run(waiting.id)).status == "waiting"  # unfinished: kept
        assert (await engine.get_run(recent.id)).status == "cancelled"  # recent: kept
        assert [a.run_id for a in await engine.pending_approvals()] == [waiting.id]

        lines = [json.loads(line) for line in archive.read_text().splitlines()]
        by_id = {r["run"]["id"]: r for r in lines}
        assert set(by_id) == {done.id, failed.id}
        kept = by_id[done.id]
        assert kept["run"]["status"] == "completed" and kept["run"]["result"] == "approved"
        assert [v["voter"] for v in kept["votes"]] == ["ann", "bo"]
        assert kept["approvals"][0]["key"] == "ok" and kept["journal"]
        assert {h["type"] for h in kept["history"]} >= {"run_started", "approval_decided"}
        assert kept["audit"] and kept["audit"][0]["chain"] == done.id

        purged = [e async for e in engine.audit_log("purged")]
        assert {json.loads(e.data)["run_id"] for e in purged} == {done.id, failed.id}
        assert not (await engine.verify_audit()).problems  # what remains is whole

        again = await engine.purge("90d")
        assert (again.runs, again.idempotency_records, again.link_nonces) == (0, 0, 0)


async def test_purge_filters_by_workflow_and_refuses_bad_arguments(
    engine: Engine, clock: FakeClock
) -> None:
    @engine.workflow()
    async def one(ctx: Context) -> int:
        return 1

    @engine.workflow()
    async def two(ctx: Context) -> int:
        return 2

    async with engine:
        a = await engine.start(one)
        b = await engine.start(two)
        await engine.result(a.id, timeout=10)
        await engine.result(b.id, timeout=10)
        clock.advance("2d")
        assert (await engine.purge("1d", workflow=two.__qualname__)).runs == 1
        assert (await engine.get_run(a.id)).result == 1
        with pytest.raises(InvalidArgument):
            await engine.purge("soon")
        with pytest.raises(InvalidArgument):
            await engine.purge("1d", batch=0)


def test_purge_knows_every_table_that_holds_a_runs_rows() -> None:
    """A table added later with a `run_id` column must be purged with its runs too."""
    import re

    from signoff.store import sql_purge

    folder = Path(sql_purge.__file__).parent / "migrations" / "sqlite"
    text = "\n".join(p.read_text() for p in sorted(folder.glob("*.sql")))
    renamed = dict(re.findall(r"ALTER TABLE (\w+) RENAME TO (\w+)", text))  # rebuilt tables
    holding = {
        renamed.get(name, name)
        for name, body in re.findall(
            r"CREATE TABLE (\w+) \((.*?)\)(?: WITHOUT ROWID)?;", text, flags=re.S
        )
        if re.search(r"^\s*run_id\b", body, flags=re.M)
    }
    purged = {table for table, _ in sql_purge._RUN_TABLES} | {"outbox"}  # outbox: by hand
    purged |= {"link_uses"}  # used nonces outlive their run: they go by retention
    assert holding <= purged, holding - purged
