"""The audit chain: every decision on the record, and any change to the record found."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from signoff import Context, Engine, audit
from signoff.testing import FakeClock


async def _two_decisions(engine: Engine, clock: FakeClock) -> str:
    @engine.workflow()
    async def wf(ctx: Context) -> list[str]:
        first = await ctx.approval("manager", proposed={"amount": 100}, quorum=1)
        second = await ctx.approval("finance", proposed={"amount": 100}, timeout="1h")
        return [first.status.value, second.status.value]

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.edit(run.id, "manager", {"amount": 90}, by="alice", reason="rounded")
        while (await engine.get_run(run.id)).waiting_for != "approval:finance":
            await engine.settle(run.id)
        clock.advance("2h")
        assert await engine.result(run.id, timeout=5) == ["edited", "expired"]
    return run.id


async def test_decisions_and_expiries_are_chained(engine: Engine, clock: FakeClock) -> None:
    run_id = await _two_decisions(engine, clock)
    entries = [e async for e in engine.audit_log(run_id)]
    assert [(e.seq, e.type, e.actor) for e in entries] == [
        (1, "approval_decided", "alice"),
        (2, "approval_expired", None),
    ]
    assert json.loads(entries[0].data)["value"] == {"amount": 90}
    assert entries[0].prev == audit.GENESIS and entries[1].prev == entries[0].hash
    checked = await engine.verify_audit()
    assert checked.problems == [] and checked.entries == 2 and checked.chains == 1


async def test_an_export_verifies_offline_and_a_change_is_found(
    engine: Engine, clock: FakeClock
) -> None:
    run_id = await _two_decisions(engine, clock)
    lines = [json.dumps(e.to_json()) async for e in engine.audit_log()]
    exported = [audit.AuditEntry(**json.loads(line)) for line in lines]
    assert audit.verify(exported) == []
    changed = [*exported]
    data = json.loads(changed[0].data)
    data["value"] = {"amount": 9000}
    changed[0] = audit.AuditEntry(**{**changed[0].to_json(), "data": json.dumps(data)})
    assert audit.verify(changed) == [
        f"chain {run_id!r} entry 1: its content does not match its hash (changed)"
    ]
    assert audit.verify(exported[1:]) != []  # the first entry removed
    assert audit.verify(exported[::-1]) != []  # reordered


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM audit WHERE seq = 1",
        "UPDATE audit SET data = replace(data, '90', '99') WHERE seq = 1",
    ],
)
async def test_an_edit_in_the_database_is_found(
    tmp_path: Path, clock: FakeClock, tamper: str
) -> None:
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    engine = Engine(url, clock=clock, poll_interval=0.01, lease="5s")
    try:
        await _two_decisions(engine, clock)
        conn = sqlite3.connect(tmp_path / "signoff.db")
        with conn:
            conn.execute(tamper)
        conn.close()
        assert (await engine.verify_audit()).problems != []
    finally:
        await engine.close()


async def test_tokens_and_cancellations_are_on_the_record(engine: Engine) -> None:
    token, _ = await engine.access.create_token("alice", ["decide"], by="admin")
    await engine.access.revoke_token(token.id, by="admin")
    await engine.access.revoke_token(token.id, by="admin")  # a repeat changes nothing

    @engine.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.approval("never")

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.cancel(run.id, by="ops", reason="duplicate order")
    tokens = [(e.type, e.actor) async for e in engine.audit_log(audit.TOKENS)]
    assert tokens == [("token_created", "admin"), ("token_revoked", "admin")]
    cancelled = [(e.type, e.actor) async for e in engine.audit_log(run.id)]
    assert cancelled == [("run_cancelled", "ops")]
    assert (await engine.verify_audit()).problems == []
