"""Bad input: each gets a clear error, and nothing already recorded is lost."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from signoff import (
    ApprovalNotFound,
    ApprovalStatus,
    Context,
    DecisionConflict,
    DuplicateApprovalKey,
    Engine,
    InvalidArgument,
    InvalidDuration,
    NotSerializable,
    RunFailed,
    RunNotFound,
    RunStatus,
    StoreUnavailable,
    WorkflowNotFound,
)
from signoff.testing import FakeClock

BAD_VALUES = {
    "nan": float("nan"),
    "infinity": float("inf"),
    "minus-infinity": float("-inf"),
    "nul": "before\u0000after",
    "lone-surrogate": "half \ud800 a pair",
}


def nested(bad: Any) -> dict[str, Any]:
    return {"ok": 1, "items": [{"deep": bad}]}


async def snapshot(engine: Engine, run_id: str) -> tuple[Any, ...]:
    return (
        await engine.get_run(run_id),
        await engine.history(run_id),
        await engine.approvals(run_id),
        await engine.store.get_journal(run_id),
    )


def register_waiter(engine: Engine) -> None:
    @engine.workflow(name="waiter")
    async def waiter(ctx: Context) -> Any:
        d = await ctx.approval("manager", proposed={"amount": 10})
        data = await ctx.wait_for_signal("docs")
        return {"decision": d.value, "docs": data}


async def test_step_result_not_json_is_refused_before_journaling(engine: Engine) -> None:
    calls: list[str] = []

    def good() -> int:
        calls.append("good")
        return 1

    def bad_step() -> Any:
        calls.append("bad")
        return {"tags": {"a", "b"}}

    @engine.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.step(good)
        await ctx.approval("k")
        await ctx.step(bad_step)

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.approve(run.id, "k")
        with pytest.raises(RunFailed) as info:
            await engine.result(run.id, timeout=5)
    error = info.value.error
    assert error["type"] == "NotSerializable"
    assert "bad_step" in error["message"] and "set" in error["message"]
    assert calls == ["good", "bad"]
    journal = await engine.store.get_journal(run.id)
    assert [(e.seq, e.kind, e.status) for e in journal] == [
        (0, "step", "done"),
        (1, "approval", "done"),
    ]
    types = [e.type for e in await engine.history(run.id)]
    assert types.count("step_completed") == 1 and "step_failed" not in types
    [approval] = await engine.approvals(run.id)
    assert approval.status is ApprovalStatus.APPROVED


async def test_step_result_types_name_the_step_and_the_type(engine: Engine) -> None:
    values: dict[str, Any] = {
        "bytes": b"raw",
        "object": object(),
        "set": {1, 2},
        "int": {1: "int key"},
    }

    @engine.workflow()
    async def wf(ctx: Context, kind: str) -> None:
        await ctx.step(lambda: values[kind], name=f"produce {kind}")

    async with engine:
        runs = {kind: await engine.start(wf, kind) for kind in values}
        for kind, run in runs.items():
            with pytest.raises(RunFailed) as info:
                await engine.result(run.id, timeout=5)
            message = info.value.error["message"]
            assert f"'produce {kind}'" in message and f"type {kind}" in message
            assert await engine.store.get_journal(run.id) == []


async def test_unknown_workflow_name(engine: Engine) -> None:
    @engine.workflow(name="known")
    async def known(ctx: Context) -> None:
        return None

    with pytest.raises(WorkflowNotFound, match=r"'nope'.*known"):
        await engine.start("nope")

    async def unregistered(ctx: Context) -> None:
        return None

    with pytest.raises(WorkflowNotFound, match=r"engine\.workflow"):
        await engine.start(unregistered)
    assert await engine.list_runs() == []


async def test_decision_for_unknown_run(engine: Engine) -> None:
    with pytest.raises(RunNotFound) as info:
        await engine.approve("no-such-run", "manager", by="alice")
    assert info.value.run_id == "no-such-run"
    for call in (
        engine.reject("x", "k"),
        engine.edit("x", "k", 1),
        engine.request_changes("x", "k"),
    ):
        with pytest.raises(RunNotFound):
            await call


async def test_decision_for_unknown_key(engine: Engine) -> None:
    register_waiter(engine)
    async with engine:
        run = await engine.start("waiter")
        await engine.settle(run.id)
        before = await snapshot(engine, run.id)
        with pytest.raises(ApprovalNotFound) as info:
            await engine.approve(run.id, "finance", by="alice")
        assert info.value.key == "finance" and "'manager'" in str(info.value)
        assert await snapshot(engine, run.id) == before
        await engine.approve(run.id, "manager")
        await engine.signal(run.id, "docs", "d")
        assert await engine.result(run.id, timeout=5) == {"decision": {"amount": 10}, "docs": "d"}


async def test_decision_on_a_run_not_waiting_for_it(engine: Engine) -> None:
    register_waiter(engine)
    async with engine:
        run = await engine.start("waiter")
        await engine.settle(run.id)
        await engine.approve(run.id, "manager", by="alice")
        waiting = await engine.settle(run.id)
        assert waiting.waiting_for == "signal:docs"
        before = await snapshot(engine, run.id)
        # the approval it waited for is decided; it now waits for a signal
        with pytest.raises(DecisionConflict):
            await engine.reject(run.id, "manager", by="bob")
        with pytest.raises(ApprovalNotFound):
            await engine.approve(run.id, "docs", by="bob")
        assert await snapshot(engine, run.id) == before
        await engine.signal(run.id, "docs", [1])
        await engine.result(run.id, timeout=5)
        # and on a finished run
        with pytest.raises(ApprovalNotFound):
            await engine.approve(run.id, "later")
        with pytest.raises(DecisionConflict):
            await engine.edit(run.id, "manager", {"amount": 1})
    assert (await engine.get_run(run.id)).status is RunStatus.COMPLETED


async def test_bad_value_in_start_input(engine: Engine) -> None:
    register_waiter(engine)
    for what, bad in BAD_VALUES.items():
        with pytest.raises(NotSerializable, match="input") as info:
            await engine.start("waiter", nested(bad))
        assert "[0]['items'][0]['deep']" in str(info.value), what
        with pytest.raises(NotSerializable):
            await engine.start("waiter", key=bad)
    assert await engine.list_runs() == []


async def test_bad_value_in_a_proposed_value(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> list[str]:
        refused = []
        for bad in BAD_VALUES.values():
            try:
                await ctx.approval("manager", proposed=nested(bad))
            except NotSerializable as exc:
                refused.append(str(exc))
        d = await ctx.approval("manager", proposed={"fixed": True})
        return [*refused, d.status.value]

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        [approval] = await engine.pending_approvals()
        assert approval.proposed == {"fixed": True} and approval.round == 1
        await engine.approve(run.id, "manager")
        result = await engine.result(run.id, timeout=5)
    assert len(result) == len(BAD_VALUES) + 1 and result[-1] == "approved"
    assert all("proposed value of 'manager'" in message for message in result[:-1])


async def test_uncaught_bad_proposed_value_fails_the_run_recording_no_approval(
    engine: Engine,
) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.approval("manager", proposed={"amount": float("nan")})

    async with engine:
        run = await engine.start(wf)
        with pytest.raises(RunFailed) as info:
            await engine.result(run.id, timeout=5)
    assert info.value.error["type"] == "NotSerializable"
    assert "NaN" in info.value.error["message"]
    assert await engine.approvals(run.id) == []
    assert await engine.pending_approvals() == []


async def test_bad_value_in_an_edit(engine: Engine) -> None:
    register_waiter(engine)
    async with engine:
        run = await engine.start("waiter")
        await engine.settle(run.id)
        before = await snapshot(engine, run.id)
        for bad in BAD_VALUES.values():
            with pytest.raises(NotSerializable, match="edited value"):
                await engine.edit(run.id, "manager", nested(bad), by="carol")
            with pytest.raises(NotSerializable):
                await engine.edit(run.id, "manager", bad)
        assert await snapshot(engine, run.id) == before
        [approval] = await engine.pending_approvals()
        assert approval.status is ApprovalStatus.PENDING
        await engine.edit(run.id, "manager", {"amount": 5})
        await engine.signal(run.id, "docs", None)
        assert (await engine.result(run.id, timeout=5))["decision"] == {"amount": 5}


async def test_bad_value_in_signal_data(engine: Engine) -> None:
    register_waiter(engine)
    async with engine:
        run = await engine.start("waiter")
        await engine.settle(run.id)
        await engine.approve(run.id, "manager")
        assert (await engine.settle(run.id)).waiting_for == "signal:docs"
        before = await snapshot(engine, run.id)
        for bad in BAD_VALUES.values():
            with pytest.raises(NotSerializable, match="docs"):
                await engine.signal(run.id, "docs", nested(bad))
            with pytest.raises(NotSerializable):
                await engine.signal(run.id, "docs", bad)
        assert await snapshot(engine, run.id) == before
        await engine.signal(run.id, "docs", {"clean": True})
        assert (await engine.result(run.id, timeout=5))["docs"] == {"clean": True}


async def test_invalid_timeout_string(engine: Engine) -> None:
    bad_timeouts = ["7x", "soon", "", "-1h", "1h 30m", "h"]

    @engine.workflow()
    async def wf(ctx: Context) -> list[str]:
        refused = []
        for timeout in bad_timeouts:
            try:
                await ctx.approval("manager", timeout=timeout)
            except InvalidDuration as exc:
                refused.append(str(exc))
        return refused

    async with engine:
        run = await engine.start(wf)
        messages = await engine.result(run.id, timeout=5)
    assert len(messages) == len(bad_timeouts)
    assert all("timeout=" in m and "'30s'" in m for m in messages)
    assert await engine.approvals(run.id) == []


async def test_invalid_sleep_and_signal_timeout_fail_the_run_clearly(engine: Engine) -> None:
    @engine.workflow()
    async def sleeper(ctx: Context) -> None:
        await ctx.sleep("a while")

    @engine.workflow()
    async def listener(ctx: Context) -> None:
        await ctx.wait_for_signal("x", timeout="3 days")

    async with engine:
        for wf in (sleeper, listener):
            run = await engine.start(wf)
            with pytest.raises(RunFailed) as info:
                await engine.result(run.id, timeout=5)
            assert info.value.error["type"] == "InvalidDuration"
            assert await engine.store.get_journal(run.id) == []


async def test_duplicate_approval_key_in_one_run(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.approval("manager", proposed=1)
        await ctx.approval("manager", proposed=2)

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.approve(run.id, "manager", by="alice")
        with pytest.raises(RunFailed) as info:
            await engine.result(run.id, timeout=5)
    error = info.value.error
    assert error["type"] == "DuplicateApprovalKey"
    assert "'manager'" in error["message"] and "approved" in error["message"]
    [approval] = await engine.approvals(run.id)  # the first round, as decided
    assert approval.status is ApprovalStatus.APPROVED and approval.decided_by == "alice"
    types = [e.type for e in await engine.history(run.id)]
    assert types.count("approval_requested") == 1 and types.count("approval_decided") == 1


async def test_duplicate_approval_key_can_be_caught(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> str:
        await ctx.approval("manager")
        try:
            await ctx.approval("manager")
        except DuplicateApprovalKey as exc:
            assert exc.key == "manager"
            return "caught"
        return "asked twice"

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.reject(run.id, "manager")
        assert await engine.result(run.id, timeout=5) == "caught"


async def test_invalid_approval_key(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> list[str]:
        refused = []
        for key in ["", "x" * 201, "nul\u0000key", "half\ud800"]:
            try:
                await ctx.approval(key)
            except InvalidArgument as exc:
                refused.append(type(exc).__name__)
        return refused

    async with engine:
        run = await engine.start(wf)
        assert await engine.result(run.id, timeout=5) == [
            "InvalidArgument",
            "InvalidArgument",
            "NotSerializable",
            "NotSerializable",
        ]
    assert await engine.approvals(run.id) == []


async def test_database_path_that_cannot_be_written(tmp_path: Path, clock: FakeClock) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a folder should be")
    path = blocker / "signoff.db"
    eng = Engine(f"sqlite:///{path}", clock=clock)
    try:
        with pytest.raises(StoreUnavailable) as info:
            await eng.open()
        message = str(info.value)
        assert str(path) in message and "writable" in message
        with pytest.raises(StoreUnavailable):
            await eng.list_runs()
    finally:
        await eng.close()
    assert not path.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
async def test_database_in_a_read_only_folder(tmp_path: Path, clock: FakeClock) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    eng = Engine(f"sqlite:///{folder / 'x.db'}", clock=clock)
    try:
        with pytest.raises(StoreUnavailable, match="writable"):
            await eng.open()
    finally:
        await eng.close()
        folder.chmod(0o700)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://localhost/db", "unsupported database URL 'mysql://localhost/db'"),
        ("signoff.db", "use sqlite:///path.db"),
        ("", "unsupported database URL ''"),
        ("sqlite://host/file.db", "has a host"),
        ("sqlite://", "names no file"),
        ("sqlite:///x.db?synchronous=sometimes", "synchronous='sometimes'"),
    ],
)
def test_engine_with_an_unsupported_url(url: str, says: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        Engine(url)
    assert says in str(info.value)


BAD_TEXTS = ["a\u0000b", "a\udcffb"]  # NUL; a lone surrogate (as from a non-UTF-8 argv)


def bad_text_calls(
    engine: Engine, run_id: str, bad: str
) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "signal name": lambda: engine.signal(run_id, bad, 1),
        "signal by": lambda: engine.signal(run_id, "docs", 1, by=bad),
        "approve by": lambda: engine.approve(run_id, "manager", by=bad),
        "reject reason": lambda: engine.reject(run_id, "manager", reason=bad),
        "decision key": lambda: engine.approve(run_id, bad),
        "decision run": lambda: engine.approve(bad, "manager"),
        "cancel by": lambda: engine.cancel(run_id, by=bad),
        "cancel reason": lambda: engine.cancel(run_id, reason=bad),
        "retry by": lambda: engine.retry(run_id, by=bad),
        "start requested_by": lambda: engine.start("waiter", requested_by=bad),
        "start run_id": lambda: engine.start("waiter", run_id=bad),
        "get_run": lambda: engine.get_run(bad),
        "history": lambda: engine.history(bad),
        "approvals": lambda: engine.approvals(bad),
        "list_runs workflow": lambda: engine.list_runs(workflow=bad),
        "pending_approvals run": lambda: engine.pending_approvals(run_id=bad),
    }


async def test_bad_text_arguments_are_refused_on_every_store(engine: Engine) -> None:
    register_waiter(engine)
    async with engine:
        run = await engine.start("waiter")
        await engine.settle(run.id)
        before = await snapshot(engine, run.id)
        for bad in BAD_TEXTS:
            for what, call in bad_text_calls(engine, run.id, bad).items():
                with pytest.raises(NotSerializable) as info:
                    await call()
                message = str(info.value)
                assert "NUL" in message or "surrogate" in message, (what, message)
        assert await snapshot(engine, run.id) == before
        assert len(await engine.list_runs()) == 1
        await engine.approve(run.id, "manager")
        await engine.signal(run.id, "docs", 1)
        await engine.result(run.id, timeout=5)


async def test_bad_step_and_workflow_names(engine: Engine) -> None:
    async def wf(ctx: Context) -> None:
        return None

    for bad in BAD_TEXTS:
        with pytest.raises(NotSerializable, match="workflow name"):
            engine.workflow(name=f"flow {bad}")(wf)
    assert engine.workflows == []

    @engine.workflow()
    async def named(ctx: Context) -> list[str]:
        refused = []
        for bad in BAD_TEXTS:
            try:
                await ctx.step(lambda: 1, name=f"step {bad}")
            except NotSerializable as exc:
                refused.append(str(exc))
        await ctx.step(lambda: 2, name="fine")
        return refused

    async with engine:
        run = await engine.start(named)
        refused = await engine.result(run.id, timeout=5)
    assert len(refused) == 2 and all(m.startswith("step name") for m in refused)
    assert [e.name for e in await engine.store.get_journal(run.id)] == ["fine"]


def test_bad_engine_settings(store_url: str) -> None:
    with pytest.raises(InvalidDuration, match="lease="):
        Engine(store_url, lease="forever")
    with pytest.raises(InvalidDuration, match="poll_interval="):
        Engine(store_url, poll_interval=-1)
    with pytest.raises(InvalidArgument, match="concurrency"):
        Engine(store_url, concurrency=0)
