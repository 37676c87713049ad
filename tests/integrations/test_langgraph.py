"""LangGraph under signoff: the agent parks on a tool call's approval, its worker is
killed, a person edits the call, a new worker resumes; the tool runs once with the
edited arguments and the model is called once per turn across all processes.

The oracle is the outside world of tests/integrations/langgraph_app.py: a counter of
model calls and a ledger of tool runs, files shared by every process of a test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import tool

from signoff import CallRejected, Context, Engine, InvalidEdit, RunFailed, RunStatus
from signoff.integrations import langgraph as sl
from tests.integrations import langgraph_app as app
from tests.integrations import world
from tests.integrations.procs import AgentWorkers, wait_for
from tests.integrations.world import model_turns, read, sent

WF = app.support_langgraph
APP = app.__name__  # the module its worker processes run


class GraphWorkers(AgentWorkers):
    """Worker processes of the LangGraph app; the outside world is the test's directory."""

    module = APP


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[GraphWorkers]:
    with GraphWorkers(tmp_path) as w:
        yield w


@pytest.fixture
def client(workers: GraphWorkers) -> Iterator[Engine]:
    """An engine in the test's process with no worker: it starts runs and decides."""
    eng = app.make_engine(f"sqlite:///{workers.db}")
    try:
        yield eng
    finally:
        eng.sync.close()


@pytest.mark.slow
def test_killed_while_waiting_then_edited_runs_the_edit_once(
    workers: GraphWorkers, client: Engine
) -> None:
    first = workers.start()
    edited = client.sync.start(WF, "write to dana").id
    rejected = client.sync.start(WF, "write to dana").id
    wait_for(client, [edited, rejected], RunStatus.WAITING, workers)
    workers.kill(first)

    [pending] = client.sync.pending_approvals(run_id=edited)
    assert pending.key == "tool:call_dana" and pending.proposed["to"] == "dana@example.com"
    assert (
        pending.metadata["tool"] == "send_email" and pending.metadata["tool_call_id"] == "call_dana"
    )
    assert pending.metadata["model"] == "scripted-support"
    assert pending.summary == (
        "send_email: Send an email to a customer. (asked by scripted-support, call call_dana)"
    )
    assert pending.schema is not None and pending.schema["required"] == ["to", "subject", "body"]
    [turn_2] = [
        c
        for c in read(workers.tmp, "model_calls.jsonl")
        if c["key"].startswith(edited) and c["turn"] == 2
    ]
    assert turn_2["nonce"] in pending.proposed["body"]  # what the model answered, once

    # decided while no worker runs (from this process: a person at the CLI or inbox)
    change = {**pending.proposed, "body": "Your refund of 129.00 is on its way."}
    with pytest.raises(InvalidEdit):  # the tool's schema holds on every surface
        client.sync.edit(edited, pending.key, {"to": "dana@example.com"}, by="alice")
    with pytest.raises(InvalidEdit):  # so do its argument names
        client.sync.edit(edited, pending.key, {**change, "bcc": "eve@example.com"}, by="alice")
    client.sync.edit(edited, pending.key, change, by="alice", reason="friendlier")
    [other] = client.sync.pending_approvals(run_id=rejected)
    client.sync.reject(rejected, other.key, by="bob", reason="the refund is not approved yet")
    assert sent(workers.tmp) == []

    second = workers.start()
    wait_for(client, [edited, rejected], RunStatus.COMPLETED, workers)
    assert second.poll() is None

    assert [(t["to"], t["body"], t["pid"]) for t in sent(workers.tmp)] == [
        ("dana@example.com", change["body"], second.pid)
    ], "the edited email, sent once, by the new worker"
    lookups = [t for t in read(workers.tmp, "tools.jsonl") if t["tool"] == "lookup_customer"]
    assert [t["pid"] for t in lookups] == [first.pid, first.pid]  # never again on replay
    # the model: once per turn across both processes; turns 1 and 2 before the kill
    for run_id in (edited, rejected):
        assert model_turns(workers.tmp, run_id) == [1, 2, 3]
    by_pid = Counter(c["pid"] for c in read(workers.tmp, "model_calls.jsonl"))
    assert by_pid == Counter({first.pid: 4, second.pid: 2})

    assert client.sync.result(edited) == (
        f"done: [success] sent to dana@example.com: {change['body']}"
    )
    # the refusal reached the model as an error ToolMessage with who and why; it went on
    assert client.sync.result(rejected) == (
        "done: [error] bob rejected this tool call: the refund is not approved yet. It was not run."
    )
    decided = [e for e in client.sync.history(edited) if e.type == "approval_decided"]
    assert [(e.actor, e.data["status"]) for e in decided] == [("alice", "edited")]


# in one process -------------------------------------------------------------------------


@pytest.fixture
async def engine(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Engine]:
    """An engine with a worker in this process, on each backend."""
    monkeypatch.setattr(world, "OUT", tmp_path)
    eng = app.make_engine(store_url)
    async with eng:
        yield eng


async def test_two_calls_in_one_response_are_asked_together(engine: Engine, tmp_path: Path) -> None:
    run = await engine.start(WF, "write two emails")
    assert (await engine.settle(run.id, timeout=10)).status is RunStatus.WAITING
    pending = await engine.pending_approvals(run_id=run.id)
    assert [p.key for p in pending] == ["tool:call_dana", "tool:call_lee"]
    history = await engine.history(run.id)
    assert len([e for e in history if e.type == "approval_requested"]) == 2
    waiting = await engine.get_run(run.id)  # one park, on both
    assert waiting.waiting_for == "approval:tool:call_dana, approval:tool:call_lee"
    assert sent(tmp_path) == []

    # each decided on its own: the approved call runs while the other is still open
    await engine.approve(run.id, "tool:call_lee", by="bob")
    assert (await engine.settle(run.id, timeout=10)).status is RunStatus.WAITING
    assert [t["to"] for t in sent(tmp_path)] == ["lee@example.com"]
    await engine.edit(run.id, "tool:call_dana", {**pending[0].proposed, "body": "Hi"}, by="bob")
    result = await engine.result(run.id, timeout=10)

    # approved as proposed: the body the model wrote once (its nonce), not a new answer
    assert [(t["to"], t["body"]) for t in sent(tmp_path)] == [
        ("lee@example.com", pending[1].proposed["body"]),
        ("dana@example.com", "Hi"),
    ]
    assert result == (
        "done: [success] sent to dana@example.com: Hi; "
        f"[success] sent to lee@example.com: {pending[1].proposed['body']}"
    )
    assert model_turns(tmp_path, run.id) == [1, 2, 3]
    steps = [e.name for e in await engine.store.get_journal(run.id)]
    assert steps.count("langchain.model") == 3
    assert steps.count("langchain.tool:send_email") == 2


async def test_expired_and_changes_requested_reach_the_model_as_refusals(
    engine: Engine, tmp_path: Path
) -> None:
    run = await engine.start(WF, "write to dana")
    await engine.settle(run.id, timeout=10)
    await engine.request_changes(run.id, "tool:call_dana", by="carol", reason="mention the order")
    assert await engine.result(run.id, timeout=10) == (
        "done: [error] carol asked for changes to this tool call: mention the order. "
        "It was not run."
    )
    assert sent(tmp_path) == []


async def test_interrupts_become_approvals_and_resume_the_graph(
    engine: Engine, tmp_path: Path
) -> None:
    run = await engine.start(app.review_langgraph, "dana")
    assert (await engine.settle(run.id, timeout=10)).status is RunStatus.WAITING
    pending = await engine.pending_approvals(run_id=run.id)
    assert sorted((p.key, p.summary, str(p.proposed)) for p in pending) == [
        ("interrupt:cc", "Who should be copied?", "nobody"),
        (
            "interrupt:review:1",
            "Send this email to dana?",
            "{'body': 'Dear dana, your refund is on its way.'}",
        ),
    ]
    await engine.edit(run.id, "interrupt:review:1", {"body": "Refund sent."}, by="alice")
    assert (await engine.settle(run.id, timeout=10)).status is RunStatus.WAITING
    await engine.edit(run.id, "interrupt:cc", "lee@example.com", by="alice")
    assert await engine.result(run.id, timeout=10) == {
        "outcome": "sent: Refund sent.",
        "cc": "lee@example.com",
    }
    assert [(t["tool"], t["body"]) for t in read(tmp_path, "tools.jsonl")] == [
        ("send", "Refund sent.")
    ]

    other = await engine.start(app.review_langgraph, "lee")
    await engine.settle(other.id, timeout=10)
    await engine.reject(other.id, "interrupt:review:1", by="bob", reason="wrong amount")
    await engine.approve(other.id, "interrupt:cc", by="bob")
    assert await engine.result(other.id, timeout=10) == {
        "outcome": "not sent: bob: wrong amount",
        "cc": "nobody",
    }
    assert len(read(tmp_path, "tools.jsonl")) == 1


async def test_ask_human_tool_and_direct_calls(engine: Engine) -> None:
    asked = sl.ask_human(to="alice")
    direct = sl.gated_tool(app.send_email, key_prefix="direct")

    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        call = {"name": "ask_human", "args": {"question": "Which plan?"}, "id": "q1"}
        answer = await asked.ainvoke({**call, "type": "tool_call"})
        declined = await asked.ainvoke(
            {"name": "ask_human", "args": {"question": "Why?"}, "id": "q2", "type": "tool_call"}
        )
        try:
            await direct.ainvoke({"to": "x@example.com", "subject": "s", "body": "b"})
        except CallRejected as exc:
            refused = str(exc)
        return [answer.content, declined.status, declined.content, refused]

    run = await engine.start(wf)
    await engine.settle(run.id, timeout=10)
    [question] = await engine.pending_approvals(run_id=run.id)
    assert question.key == "tool.ask:q1" and question.question
    await engine.answer(run.id, "tool.ask:q1", "the yearly one", by="alice")
    await engine.settle(run.id, timeout=10)
    await engine.reject(run.id, "tool.ask:q2", by="alice", reason="not your business")
    await engine.settle(run.id, timeout=10)
    [gate] = await engine.pending_approvals(run_id=run.id)
    assert gate.key == "direct:send_email:1"
    await engine.reject(run.id, gate.key, by="bob")
    answer, status, declined, refused = await engine.result(run.id, timeout=10)
    assert (answer, status) == ("the yearly one", "error")
    assert "alice declined" in declined and "not your business" in declined
    assert refused == "bob rejected this tool call. It was not run."


async def test_run_graph_takes_a_builder_and_refuses_other_things(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context, what: str) -> Any:
        graph = app._review if what == "builder" else what
        return await sl.run_graph(ctx, graph, {"to": "kim"})

    run = await engine.start(wf, "builder")
    await engine.settle(run.id, timeout=10)
    await engine.approve(run.id, "interrupt:review:1", by="ann")
    await engine.approve(run.id, "interrupt:cc", by="ann")
    assert (await engine.result(run.id, timeout=10))["outcome"].startswith("sent: Dear kim")
    bad = await engine.start(wf, "a string")
    with pytest.raises(RunFailed) as info:
        await engine.result(bad.id, timeout=10)
    assert info.value.error["type"] == "InvalidArgument"
    assert "needs a LangGraph graph" in info.value.error["message"]


@pytest.mark.slow
def test_the_example_sends_the_edited_email_once() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_MODEL", "OPENAI_API_KEY")}
    done = subprocess.run(
        [sys.executable, "examples/agent_email_langgraph.py"],
        cwd=root,
        env={**env, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    out = done.stdout
    assert "waiting for tool:call-2" in out
    assert "send_email: Send an email to a customer. (asked by offline-script" in out
    assert "agent: Reported: [success] sent to dana@example.com" in out
    assert (
        "sent: [{'to': 'dana@example.com', 'subject': 'Your refund for order ord-88231', "
        "'body': 'Dear Dana, your refund of 129.00 is on its way.'}]" in out
    )


def test_scripted_model_binds_tools_and_names_itself() -> None:
    def script(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(f"{len(messages)} messages")

    @tool
    def noop(x: int) -> int:
        """Do nothing."""
        return x

    model = sl.ScriptedChatModel(script=script, model_name="offline")
    reply = model.bind_tools([noop]).invoke("hi")
    assert reply.content == "1 messages"
    assert reply.response_metadata["model_name"] == "offline"
    assert isinstance(sl.gated_tool(noop), sl.GatedTool)
    assert sl.gated_tool(noop).edit_schema()["additionalProperties"] is False
    message = ToolMessage("x", tool_call_id="1", status="error")
    assert message.status == "error"
