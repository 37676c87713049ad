"""The examples work: the main job end to end as a process, the expense chain's routing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from examples import expense_chain, refund_review
from signoff import ApprovalStatus, Engine, RunStatus

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "examples/refund_review.py", "--db", str(db)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    # paused, with the pending approval on screen
    assert "waiting for approval:manager" in out
    assert "pending approvals" in out and "Refund 129.00 to Dana Whitfield" in out
    # the decision, the resumed run and its result
    assert "approved by alice" in out
    assert "status completed" in out
    assert "status: refunded" in out
    # the timeline, in order
    events = [
        "run_started",
        "step_completed",
        "approval_requested",
        "approval_decided",
        "run_completed",
    ]
    positions = [out.index(e) for e in events]
    assert positions == sorted(positions), out
    assert out.count("step_completed") == 3
    # the refund was issued exactly once, in the example's ledger
    with sqlite3.connect(tmp_path / "demo-ledger.db") as conn:
        rows = conn.execute("SELECT order_id, amount FROM refunds").fetchall()
    conn.close()
    assert rows == [("ord-88231", 12900)]


def test_demo_reports_an_unusable_db_path(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "examples/refund_review.py", "--db", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


# refund review, in process ---------------------------------------------------------------


@pytest.fixture
async def refunds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Engine]:
    monkeypatch.setattr(refund_review, "LEDGER", tmp_path / "ledger.db")
    eng = Engine(f"sqlite:///{tmp_path / 'refunds.db'}", poll_interval=0.01)
    eng.workflow("refund_review")(refund_review.refund_review)
    async with eng:
        yield eng


def ledger_rows(path: Path) -> list[tuple[str, float]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT order_id, amount FROM refunds").fetchall()
    finally:
        conn.close()


async def test_refund_edited_amount_is_what_is_paid(refunds: Engine, tmp_path: Path) -> None:
    run = await refunds.start(refund_review.refund_review, "T-1042")
    await refunds.edit(run.id, "manager", {"amount": 6000}, by="alice", reason="half")
    result = await refunds.result(run.id, timeout=10)
    assert result["status"] == "refunded" and result["amount"] == 6000
    assert result["idempotency_key"].startswith(run.id + ":")
    assert ledger_rows(tmp_path / "ledger.db") == [("ord-88231", 6000)]
    (decided,) = [e for e in await refunds.history(run.id) if e.type == "approval_decided"]
    assert decided.actor == "alice"
    assert decided.data["value"] == {"amount": 6000}
    assert decided.data["original"] == {"amount": 12900}


async def test_rejected_refund_pays_nothing(refunds: Engine, tmp_path: Path) -> None:
    run = await refunds.start(refund_review.refund_review, "T-1042")
    await refunds.reject(run.id, "manager", by="bob", reason="outside the return window")
    result = await refunds.result(run.id, timeout=10)
    assert result == {
        "ticket": "T-1042",
        "status": "rejected",
        "by": "bob",
        "reason": "outside the return window",
    }
    assert not (tmp_path / "ledger.db").exists() or ledger_rows(tmp_path / "ledger.db") == []


async def test_unknown_ticket_fails_the_run_with_the_reason(refunds: Engine) -> None:
    run = await refunds.start(refund_review.refund_review, "T-0000")
    settled = await refunds.settle(run.id, timeout=10)
    assert settled.status is RunStatus.FAILED
    assert settled.error is not None and "no ticket 'T-0000'" in settled.error["message"]


# expense chain -----------------------------------------------------------------------


@pytest.fixture
async def expenses(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = Engine(f"sqlite:///{tmp_path / 'expenses.db'}", poll_interval=0.01)
    eng.workflow("expense_chain")(expense_chain.expense_chain)
    async with eng:
        yield eng


@pytest.mark.parametrize(
    ("amount", "keys"),
    [
        (500.0, ["manager"]),
        (1_000.0, ["manager"]),
        (5_000.0, ["manager", "finance"]),
        (10_000.0, ["manager", "finance"]),
        (50_000.0, ["manager", "finance", "ceo"]),
    ],
)
async def test_expense_needs_the_approvals_for_its_amount(
    expenses: Engine, amount: float, keys: list[str]
) -> None:
    run = await expenses.start(expense_chain.expense_chain, "sam", amount, "travel")
    asked = await expense_chain.decide_all(expenses, run.id)
    assert asked == keys
    result = await expenses.result(run.id, timeout=10)
    assert result["status"] == "approved"
    signers = [f"{k}:{expense_chain.APPROVERS[k]}" for k in keys]
    assert result["approved_by"] == signers
    approvals = await expenses.approvals(run.id)
    assert [(a.key, a.status.value, a.decided_by) for a in approvals] == [
        (k, "approved", expense_chain.APPROVERS[k]) for k in keys
    ]
    history = await expenses.history(run.id)
    requested = [e.data["key"] for e in history if e.type == "approval_requested"]
    decided = [(e.data["key"], e.actor) for e in history if e.type == "approval_decided"]
    assert requested == keys
    assert decided == [(k, expense_chain.APPROVERS[k]) for k in keys]
    # each approval was asked only after the previous one was decided
    order = [(e.type, e.data.get("key")) for e in history if e.type.startswith("approval_")]
    assert order == [(t, k) for k in keys for t in ("approval_requested", "approval_decided")]


async def test_a_rejection_stops_the_chain(expenses: Engine) -> None:
    run = await expenses.start(expense_chain.expense_chain, "sam", 50_000.0, "servers")
    asked = await expense_chain.decide_all(expenses, run.id, reject={"finance": "not this quarter"})
    assert asked == ["manager", "finance"]
    result = await expenses.result(run.id, timeout=10)
    assert result["status"] == "rejected" and result["stopped_at"] == "finance"
    assert result["approved_by"] == ["manager:maria"]
    approvals = await expenses.approvals(run.id)
    assert [(a.key, a.status) for a in approvals] == [
        ("manager", ApprovalStatus.APPROVED),
        ("finance", ApprovalStatus.REJECTED),
    ]
    history = await expenses.history(run.id)
    assert not [e for e in history if e.type == "step_completed"]  # nothing was booked


def test_expense_main_prints_each_chain(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert expense_chain.main(["--db", str(tmp_path / "x.db")]) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert "manager -> finance -> ceo" in rows["new build servers"]
    assert "manager -> finance " in rows["conference trip"]
    assert "manager " in rows["team lunch"] and "finance" not in rows["team lunch"]
    assert all("approved by" in row for row in rows.values())
