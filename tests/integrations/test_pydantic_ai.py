"""pydantic-ai under signoff: the agent parks on a tool call's approval, its worker is
killed, a person edits the call, a new worker resumes; the tool runs once with the
edited arguments and the model is called once per turn across all processes.

The oracle is the outside world of tests/integrations/agents_app.py: a counter of model
calls and a ledger of tool runs, files shared by every process of a test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic_ai import Agent, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, FunctionModel

from signoff import Context, DecisionStatus, Engine, InvalidEdit, RunStatus
from signoff.integrations import pydantic_ai as sp
from tests.integrations import agents_app, world
from tests.integrations.procs import AgentWorkers, wait_for
from tests.integrations.world import model_turns, read, sent

WF = agents_app.support_pydantic_ai


@pytest.mark.slow
def test_killed_while_waiting_then_edited_runs_the_edit_once(
    agent_workers: AgentWorkers, agent_client: Engine
) -> None:
    workers, client = agent_workers, agent_client
    first = workers.start()
    edited = client.sync.start(WF, "write to dana").id
    rejected = client.sync.start(WF, "write to dana").id
    wait_for(client, [edited, rejected], RunStatus.WAITING, workers)
    workers.kill(first)

    [pending] = client.sync.pending_approvals(run_id=edited)
    assert pending.key.startswith("tool:") and pending.proposed["to"] == "dana@example.com"
    assert "send_email: Send an email to a customer." in pending.summary
    assert "function:support_model:" in pending.summary  # the model
    assert pending.key.removeprefix("tool:") in pending.summary  # the tool-call id
    assert pending.metadata["tool"] == "send_email"
    assert pending.metadata["model"].startswith("function:support_model:")
    assert pending.metadata["tool_call_id"] == pending.key.removeprefix("tool:")
    assert pending.schema is not None and pending.schema["required"] == ["to", "subject", "body"]
    proposed_body = pending.proposed["body"]
    [first_call] = [
        c
        for c in read(workers.tmp, "model_calls.jsonl")
        if c["key"].startswith(edited) and c["turn"] == 2
    ]
    assert first_call["nonce"] in proposed_body  # what the model answered, once

    # decided while no worker runs (from this process: a person at the CLI or inbox)
    change = {**pending.proposed, "body": "Your refund of 129.00 is on its way."}
    with pytest.raises(InvalidEdit):  # the tool's schema holds on every surface
        client.sync.edit(edited, pending.key, {"to": "dana@example.com"}, by="alice")
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

    assert client.sync.result(edited) == f"done: sent to dana@example.com: {change['body']}"
    # the refusal reached the model as the tool's result, with who and why; it went on
    assert client.sync.result(rejected) == (
        "done: bob rejected this tool call: the refund is not approved yet. It was not run."
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
    eng = Engine(store_url, poll_interval=0.01)
    eng.workflow("support_pydantic_ai")(WF)
    async with eng:
        yield eng


async def test_two_calls_in_one_response_are_asked_together(engine: Engine, tmp_path: Path) -> None:
    run = await engine.start(WF, "write two emails")
    assert (await engine.settle(run.id, timeout=10)).status is RunStatus.WAITING
    pending = await engine.pending_approvals(run_id=run.id)
    assert [p.proposed["to"] for p in pending] == ["dana@example.com", "lee@example.com"]
    history = await engine.history(run.id)
    asked = [e for e in history if e.type == "approval_requested"]
    assert len(asked) == 2 and not [e for e in history if e.type == "approval_decided"]

    await engine.approve(run.id, pending[1].key, by="bob")
    settled = await engine.settle(run.id, timeout=10)
    assert settled.status is RunStatus.WAITING  # each decided on its own: one still open
    assert read(tmp_path, "tools.jsonl")[-1]["tool"] == "lookup_customer"  # nothing sent yet
    await engine.edit(run.id, pending[0].key, {**pending[0].proposed, "body": "Hi"}, by="bob")
    result = await engine.result(run.id, timeout=10)

    emails = [(t["to"], t["body"]) for t in sent(tmp_path)]
    assert emails == [("dana@example.com", "Hi"), ("lee@example.com", pending[1].proposed["body"])]
    assert result == f"done: sent to dana@example.com: Hi; sent to lee@example.com: {emails[1][1]}"
    assert model_turns(tmp_path, run.id) == [1, 2, 3]


async def test_expired_and_changes_requested_reach_the_model_as_refusals(
    engine: Engine,
) -> None:
    run = await engine.start(WF, "write to dana")
    await engine.settle(run.id, timeout=10)
    [pending] = await engine.pending_approvals(run_id=run.id)
    await engine.request_changes(run.id, pending.key, by="carol", reason="mention the order")
    result = await engine.result(run.id, timeout=10)
    assert (
        result
        == "done: carol asked for changes to this tool call: mention the order. It was not run."
    )
    decision = await engine.approvals(run.id)
    assert decision[0].status.value == DecisionStatus.CHANGES_REQUESTED.value


# asking a person ------------------------------------------------------------------------


def asking_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returns = [
        p for m in messages for p in m.parts if p.part_kind in ("tool-return", "retry-prompt")
    ]
    if not returns:
        return ModelResponse(parts=[ToolCallPart("ask_human", {"question": "Which day suits?"})])
    return ModelResponse(parts=[TextPart(f"heard: {returns[-1].content}")])


asking_agent = Agent(FunctionModel(asking_model), output_type=str, tools=[sp.ask_human(to="ops")])


async def asking(ctx: Context) -> str:
    return await sp.run_agent(ctx, asking_agent, "plan the visit")


async def test_the_model_asks_a_person_and_reads_the_answer(engine: Engine) -> None:
    engine.workflow("asking")(asking)
    run = await engine.start(asking)
    await engine.settle(run.id, timeout=10)
    [question] = await engine.pending_approvals(run_id=run.id)
    assert question.question and question.summary == "Which day suits?"
    assert question.key.startswith("tool.ask:") and question.approvers == ["ops"]
    await engine.answer(run.id, question.key, "Tuesday", by="ops")
    assert await engine.result(run.id, timeout=10) == "heard: Tuesday"


async def test_a_declined_question_reaches_the_model_as_a_failure(engine: Engine) -> None:
    engine.workflow("asking")(asking)
    run = await engine.start(asking)
    await engine.settle(run.id, timeout=10)
    [question] = await engine.pending_approvals(run_id=run.id)
    await engine.reject(run.id, question.key, by="ops", reason="ask the customer")
    result = await engine.result(run.id, timeout=10)
    assert result.startswith("heard: ") and "ops declined to answer" in result
    assert "ask the customer" in result
