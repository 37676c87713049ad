"""`engine.sync`: the same operations from plain (not async) code."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from signoff import (
    Context,
    DecisionConflict,
    DecisionStatus,
    Engine,
    InvalidArgument,
    InvalidRunState,
    RunCancelled,
    RunNotFound,
    RunStatus,
    SyncEngine,
)
from signoff.testing import FakeClock


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sync.db'}"


def make_engine(url: str, clock: FakeClock) -> Engine:
    engine = Engine(url, clock=clock, poll_interval=0.01, lease="5s")

    @engine.workflow(name="refund")
    async def refund(ctx: Context, amount: int) -> dict[str, Any]:
        d = await ctx.approval("manager", proposed={"amount": amount}, timeout="1d")
        note = await ctx.wait_for_signal("note") if d.approved else None
        return {"status": d.status.value, "value": d.value, "note": note}

    return engine


def test_with_engine_sync_runs_a_worker(url: str, clock: FakeClock) -> None:
    before = set(threading.enumerate())  # another test's engine may still hold its own
    engine = make_engine(url, clock)
    assert isinstance(engine.sync, SyncEngine) and engine.sync is engine.sync
    with engine.sync as sync:
        assert sync is engine.sync
        run = sync.start("refund", 40)
        waiting = sync.settle(run.id)
        assert waiting.status is RunStatus.WAITING
        [pending] = sync.pending_approvals()
        assert pending.run_id == run.id and pending.proposed == {"amount": 40}
        decision = sync.edit(run.id, "manager", {"amount": 30}, by="alice", reason="partial")
        assert decision.status is DecisionStatus.EDITED
        assert sync.edit(run.id, "manager", {"amount": 30}, by="alice") == decision
        with pytest.raises(DecisionConflict):
            sync.reject(run.id, "manager", by="bob")
        sync.signal(run.id, "note", "thanks")
        assert sync.result(run.id, timeout=5) == {
            "status": "edited",
            "value": {"amount": 30},
            "note": "thanks",
        }
        assert sync.get_run(run.id).status is RunStatus.COMPLETED
        assert [r.id for r in sync.list_runs(status="completed")] == [run.id]
        assert [a.status for a in sync.approvals(run.id)] == ["edited"]
        types = [e.type for e in sync.history(run.id)]
        assert types[0] == "run_started" and types[-1] == "run_completed"
        with pytest.raises(RunNotFound):
            sync.get_run("missing")
    # leaving the block stops the worker, the background loop and the store's threads
    names = {t.name for t in set(threading.enumerate()) - before}
    assert not names & {"signoff-sync", "signoff-sqlite-writer", "signoff-sqlite-reader"}


def test_every_decision_and_cancel_and_retry(url: str, clock: FakeClock) -> None:
    engine = make_engine(url, clock)
    with engine.sync as sync:
        runs = [sync.start("refund", n) for n in range(4)]
        for run in runs:
            sync.settle(run.id)
        sync.approve(runs[0].id, "manager", by="a")
        sync.reject(runs[1].id, "manager", by="b")
        sync.request_changes(runs[2].id, "manager", by="c")
        sync.cancel(runs[3].id, by="ops")
        with pytest.raises(RunCancelled):
            sync.result(runs[3].id, timeout=5)
        sync.signal(runs[0].id, "note", 1)
        assert sync.result(runs[0].id, timeout=5)["status"] == "approved"
        assert sync.result(runs[1].id, timeout=5)["status"] == "rejected"
        assert sync.result(runs[2].id, timeout=5)["status"] == "changes_requested"
        with pytest.raises(InvalidRunState, match="only failed or blocked runs"):
            sync.retry(runs[0].id)


def test_sync_without_a_worker_records_for_another(url: str, clock: FakeClock) -> None:
    client = Engine(url, clock=clock, poll_interval=0.01)
    worker = make_engine(url, clock)
    with worker.sync:  # registers the workflow name in the database
        pass
    try:
        run = client.sync.start("refund", 5)
        assert client.sync.get_run(run.id).status is RunStatus.PENDING
        with worker.sync:
            worker.sync.settle(run.id)
            client.sync.reject(run.id, "manager", by="zed")
            assert worker.sync.result(run.id, timeout=5)["status"] == "rejected"
    finally:
        client.sync.close()
        worker.sync.close()


def test_timers_fire_under_the_sync_worker(url: str, clock: FakeClock) -> None:
    engine = make_engine(url, clock)
    with engine.sync as sync:
        run = sync.start("refund", 1)
        sync.settle(run.id)
        clock.advance("1d")
        assert sync.result(run.id, timeout=5)["status"] == "expired"


async def test_sync_call_inside_a_running_loop_names_the_async_twin(
    url: str, clock: FakeClock
) -> None:
    engine = make_engine(url, clock)
    try:
        with pytest.raises(InvalidArgument) as info:
            engine.sync.start("refund", 1)
        assert "await engine.start(" in str(info.value)
        with pytest.raises(InvalidArgument, match=r"await engine\.approve\("):
            engine.sync.approve("r", "k")
        with pytest.raises(InvalidArgument, match=r"await engine\.result\("):
            engine.sync.result("r")
        assert await engine.list_runs() == []  # nothing was started
    finally:
        await engine.close()


def test_sync_engine_can_be_used_again_after_close(url: str, clock: FakeClock) -> None:
    engine = make_engine(url, clock)
    with engine.sync as sync:
        run = sync.start("refund", 3)
        sync.settle(run.id)
    assert engine.sync.get_run(run.id).status is RunStatus.WAITING  # store reopens
    with engine.sync as sync:
        sync.reject(run.id, "manager")
        assert sync.result(run.id, timeout=5)["status"] == "rejected"
    engine.sync.close()  # closing twice is harmless


def test_every_engine_operation_has_a_blocking_twin_with_its_signature() -> None:
    """engine.sync cannot drift: each operation is derived from the async method."""
    import inspect

    from signoff import Engine
    from signoff.sync import SyncEngine

    plumbing = {"open", "close", "start_worker", "stop_worker", "require_database"}
    operations = {
        name
        for name, fn in inspect.getmembers(Engine, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in plumbing
    }
    missing = {name for name in operations if not hasattr(SyncEngine, name)}
    assert missing == set()
    # the HTTP plumbing is `engine.access` (async, used by the server and the CLI), not an
    # engine operation; its deprecated spellings on Engine are not operations either
    assert {"create_token", "events", "record_history"}.isdisjoint(operations)
    assert not hasattr(SyncEngine, "access") and not hasattr(SyncEngine, "create_token")
    engine = Engine("sqlite:///unused.db")
    for name in operations:
        assert inspect.signature(getattr(engine.sync, name)) == inspect.signature(
            getattr(engine, name)
        ), name
