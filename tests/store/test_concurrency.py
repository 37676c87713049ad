"""Many runs at once: started concurrently, decided concurrently, each effect once."""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Awaitable

import signoff
from signoff import ApprovalStatus, Context, Decision, Engine, RunStatus

N = 200


async def test_many_runs_wait_then_complete_with_each_effect_once(engine: Engine) -> None:
    ledger: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def prepare(i: int) -> int:
        with lock:
            calls[f"prepare:{i}"] += 1
        return i * 100

    def pay(i: int, amount: int) -> str:
        key = signoff.idempotency_key()
        with lock:
            calls[f"pay:{i}"] += 1
            ledger[key] += 1
        return key

    @engine.workflow()
    async def payout(ctx: Context, i: int) -> dict[str, object]:
        amount = await ctx.step(prepare, i)
        d = await ctx.approval("manager", proposed={"amount": amount})
        if not d.approved:
            return {"i": i, "status": d.status.value}
        key = await ctx.step(pay, i, d.value["amount"])
        return {"i": i, "status": d.status.value, "key": key, "amount": d.value["amount"]}

    async with engine:
        runs = await asyncio.gather(*[engine.start(payout, i) for i in range(N)])
        assert len({r.id for r in runs}) == N
        settled = await asyncio.gather(*[engine.settle(r.id, timeout=30) for r in runs])
        assert all(r.status is RunStatus.WAITING for r in settled)
        assert len(await engine.list_runs(status="waiting", limit=N + 10)) == N
        assert len(await engine.pending_approvals(limit=N + 10)) == N

        def decide(i: int, run_id: str) -> Awaitable[Decision]:
            if i % 10 == 0:
                return engine.reject(run_id, "manager", by=f"u{i}")
            if i % 10 == 1:
                return engine.edit(run_id, "manager", {"amount": 1}, by=f"u{i}")
            return engine.approve(run_id, "manager", by=f"u{i}")

        decisions = await asyncio.gather(*[decide(i, r.id) for i, r in enumerate(runs)])
        assert [d.by for d in decisions] == [f"u{i}" for i in range(N)]
        results = await asyncio.gather(*[engine.result(r.id, timeout=30) for r in runs])

    assert await engine.pending_approvals() == []
    assert len(await engine.list_runs(status="completed", limit=N + 10)) == N
    for i, (run, result) in enumerate(zip(runs, results, strict=True)):
        assert result["i"] == i
        if i % 10 == 0:
            assert result["status"] == "rejected"
            assert calls[f"pay:{i}"] == 0
        else:
            assert result["key"] == f"{run.id}:2"
            assert result["amount"] == (1 if i % 10 == 1 else i * 100)
            assert calls[f"pay:{i}"] == 1
        assert calls[f"prepare:{i}"] == 1
    approved = [r for i, r in enumerate(runs) if i % 10 != 0]
    assert ledger == collections.Counter({f"{r.id}:2": 1 for r in approved})


async def test_concurrent_decisions_and_signals_on_many_runs(engine: Engine) -> None:
    @engine.workflow()
    async def both(ctx: Context) -> list[object]:
        d = await ctx.approval("a")
        s = await ctx.wait_for_signal("s")
        return [d.status.value, s]

    async with engine:
        runs = await asyncio.gather(*[engine.start(both) for _ in range(50)])
        # signal and decision race each run's first execution; neither is lost
        await asyncio.gather(
            *[engine.signal(r.id, "s", r.id) for r in runs],
            *[engine.approve(r.id, "a") for r in runs],
        )
        results = await asyncio.gather(*[engine.result(r.id, timeout=30) for r in runs])
    assert results == [["approved", r.id] for r in runs]
    for run in runs[:5]:
        [approval] = await engine.approvals(run.id)
        assert approval.status is ApprovalStatus.APPROVED
