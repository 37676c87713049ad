"""Migration 0013 (fewer bytes per waiting run): a database at version 12 with runs
waiting on approvals migrates, reads back the same, and its runs complete.

The version-12 database is written by the engine with the migrations up to 12 only and
policies stored as their full text, which is what signoff wrote before 0013 (the rest of
what the engine writes did not change)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from signoff import Context, Engine, RunStatus, errors
from signoff.store import schema, sql, sql_approval_timers, sql_approvals
from signoff.testing import FakeClock
from tests.pg_fixtures import fresh_database

DEFAULT_POLICY = sql.policy_text(sql.POLICY_V1_MARK)


async def load(order: str) -> dict[str, Any]:
    return {"order": order, "amount": 120}


async def propose(loaded: dict[str, Any]) -> dict[str, Any]:
    return {"amount": loaded["amount"], "why": "ok"}


def build(url: str, clock: FakeClock) -> Engine:
    engine = Engine(url, clock=clock, poll_interval=0.01, lease="5s")

    @engine.workflow(name="refund")
    async def refund(ctx: Context, order: str) -> dict[str, Any]:
        loaded = await ctx.step(load, order)
        draft = await ctx.step(propose, loaded)
        d = await ctx.approval("manager", summary=f"Refund {order}", proposed=draft)
        return {"status": d.status.value, "by": d.by, "value": d.value}

    @engine.workflow(name="board")
    async def board(ctx: Context, order: str) -> dict[str, Any]:
        d = await ctx.approval(
            "board",
            summary=f"Board {order}",
            proposed={"order": order},
            approvers=["alice", "carol"],
            quorum=2,
            timeout="7d",
            escalate_after="1d",
            escalate_to=["dave"],
        )
        return {"status": d.status.value, "votes": [v.by for v in d.votes]}

    return engine


@contextmanager
def connect(url: str) -> Iterator[Any]:
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as db:
            yield db
    else:
        db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            yield db
        finally:
            db.close()


def rows(url: str, sql_text: str) -> list[tuple[Any, ...]]:
    with connect(url) as db:
        return [tuple(r) for r in db.execute(sql_text).fetchall()]


async def seen(engine: Engine, run_ids: list[str]) -> dict[str, Any]:
    """Everything a user reads of these runs and the inbox through the engine."""
    out: dict[str, Any] = {}
    for run_id in run_ids:
        out[run_id] = (
            await engine.get_run(run_id),
            await engine.history(run_id),
            await engine.approvals(run_id),
            [e async for e in engine.audit_log(run_id)],
        )
    for who in (None, "alice", "bob", "dave"):
        for order in ("oldest", "urgent"):
            page = await engine.pending_approvals(approver=who, order=order)  # type: ignore[arg-type]
            out[f"inbox {who} {order}"] = (list(page), page.total)
    out["records"] = await engine.store.run_records(run_ids)
    return out


async def test_runs_waiting_at_version_12_complete_after_migrating(
    store_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store_url.startswith("postgresql"):  # the fixture's database is migrated already
        with fresh_database(None) as empty:
            await waiting_at_12_then_migrated(empty, clock, monkeypatch)
    else:
        await waiting_at_12_then_migrated(store_url, clock, monkeypatch)


async def waiting_at_12_then_migrated(
    store_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = schema.migrations
    monkeypatch.setattr(schema, "migrations", lambda d: tuple(m for m in every(d) if m[0] <= 12))
    for module in (sql_approvals, sql_approval_timers):  # policies as their full text
        monkeypatch.setattr(module, "stored_policy", lambda text: text)
    monkeypatch.setattr(sql_approvals, "stored_digest", lambda text: text)  # digests as hex
    old = build(store_url, clock)
    async with old:
        refunds = [(await old.start("refund", f"o{i}")).id for i in range(3)]
        boards = [(await old.start("board", f"b{i}")).id for i in range(2)]
        for run_id in refunds + boards:
            assert (await old.settle(run_id, timeout=15)).status is RunStatus.WAITING
        await old.approve(boards[0], "board", by="alice")  # one vote of the two needed
        before = await seen(old, refunds + boards)
    assert rows(store_url, "SELECT MAX(version) FROM schema_version") == [(12,)]
    policies = rows(store_url, "SELECT policy FROM approvals ORDER BY workflow, run_id")
    assert [p for (p,) in policies[2:]] == [DEFAULT_POLICY] * 3  # the old layout
    assert all(p.startswith('{"approvers":["alice","carol"]') for (p,) in policies[:2])
    digests = rows(store_url, "SELECT digest FROM approvals")
    assert all(isinstance(d, str) and len(d) == 64 for (d,) in digests)

    monkeypatch.undo()
    new = build(store_url, clock)
    async with new:
        assert rows(store_url, "SELECT MAX(version) FROM schema_version") == [(13,)]
        assert await seen(new, refunds + boards) == before
        stored = rows(store_url, "SELECT policy FROM approvals ORDER BY workflow, run_id")
        assert [p for (p,) in stored[2:]] == ["~1"] * 3
        assert stored[:2] == policies[:2]  # written before 0013: kept as it was
        # a new request after the migration: its policy stored in short, read the same
        late = (await new.start("refund", "late")).id
        assert (await new.settle(late, timeout=15)).status is RunStatus.WAITING
        assert rows(store_url, f"SELECT policy FROM approvals WHERE run_id = '{late}'") == [("~1",)]
        (shown,) = await new.approvals(late)
        assert (shown.approvers, shown.quorum, shown.escalate_to) == ([], 1, [])
        (digest,) = rows(store_url, f"SELECT digest FROM approvals WHERE run_id = '{late}'")
        assert bytes(digest[0]).hex() == shown.digest  # its 32 bytes
        # decide and complete every run; a digest shown before the migration still holds
        shown_before = [before[r][2][0].digest for r in refunds]
        assert all(len(d) == 64 for d in shown_before)
        with pytest.raises(errors.StaleDigest, match=shown_before[0]):
            await new.approve(refunds[0], "manager", by="bob", digest=shown_before[1])
        for run_id, digest_shown in zip(refunds, shown_before, strict=True):
            await new.approve(run_id, "manager", by="bob", digest=digest_shown)
        await new.approve(late, "manager", by="bob", digest=shown.digest)
        for run_id in refunds:
            assert await new.result(run_id, timeout=15) == {
                "status": "approved",
                "by": "bob",
                "value": {"amount": 120, "why": "ok"},
            }
        await new.approve(boards[0], "board", by="carol")
        assert await new.result(boards[0], timeout=15) == {
            "status": "approved",
            "votes": ["alice", "carol"],
        }
        # the named policy still holds: bob may not decide, the deadline still escalates
        with pytest.raises(errors.NotAllowedToDecide):
            await new.approve(boards[1], "board", by="bob")
        clock.advance(86_400 + 1)
        for _ in range(300):
            (escalated,) = await new.approvals(boards[1])
            if escalated.escalated:
                break
            await asyncio.sleep(0.02)
        assert escalated.escalated and "dave" in escalated.approvers
        assert [a.run_id for a in await new.pending_approvals(approver="dave")] == [boards[1]]
        await new.approve(boards[1], "board", by="dave")
        await new.approve(boards[1], "board", by="alice")
        assert (await new.result(boards[1], timeout=15))["status"] == "approved"
        assert (await new.verify_audit()).problems == []
    assert rows(store_url, "SELECT COUNT(*) FROM approval_inbox") == [(0,)]


async def test_postgresql_refuses_a_digest_written_as_hex_text(pg_url: str) -> None:
    """What a process of the version before 0013, still running after the migration,
    would write: its digest as 64 hex characters, which PostgreSQL would store as 64 raw
    bytes (a digest no link or button could match). It is refused; 32 bytes are not."""
    insert = (
        "INSERT INTO approvals (run_id, key, round, seq, workflow, status, summary, "
        "requested_at, policy, digest) VALUES ('r1', 'k', %s, 0, 'w', 'pending', 's', 0, "
        "'~1', %s)"
    )
    hex_text = "ab" * 32
    with psycopg.connect(pg_url, autocommit=True) as db:
        with pytest.raises(psycopg.errors.CheckViolation, match="approvals_digest_bytes"):
            db.execute(insert, (1, hex_text))
        db.execute(insert, (2, sql.stored_digest(hex_text)))
        assert db.execute("SELECT digest FROM approvals WHERE run_id = 'r1'").fetchall() == [
            (bytes.fromhex(hex_text),)
        ]
