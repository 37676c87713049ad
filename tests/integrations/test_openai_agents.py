"""The OpenAI Agents SDK under signoff: the agent parks on a `needs_approval` tool call,
its worker is killed, a person decides (an edit is refused: the SDK cannot run other
arguments), a new worker resumes from the recorded RunState; the tool runs once with the
model's arguments and the model is called once per turn across all processes.

The oracle is the outside world of tests/integrations/agents_app.py: a counter of model
calls and a ledger of tool runs, files shared by every process of a test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signoff import EditNotAllowed, Engine, RunStatus
from tests.integrations import agents_app, world
from tests.integrations.procs import AgentWorkers, wait_for
from tests.integrations.world import model_turns, read, sent

WF = agents_app.support_openai_agents


@pytest.mark.slow
def test_killed_while_waiting_then_approved_runs_the_call_once(
    agent_workers: AgentWorkers, agent_client: Engine
) -> None:
    workers, client = agent_workers, agent_client
    first = workers.start()
    approved = client.sync.start(WF, "write to dana").id
    rejected = client.sync.start(WF, "write to dana").id
    wait_for(client, [approved, rejected], RunStatus.WAITING, workers)
    workers.kill(first)

    [pending] = client.sync.pending_approvals(run_id=approved)
    assert pending.key.startswith("tool:call-") and pending.proposed["to"] == "dana@example.com"
    assert "send_email: Send an email to a customer." in pending.summary
    assert "SupportModel" in pending.summary  # the model
    assert pending.key.removeprefix("tool:") in pending.summary  # the tool-call id
    assert pending.metadata["tool"] == "send_email" and "SupportModel" in pending.metadata["model"]
    assert pending.metadata["tool_call_id"] == pending.key.removeprefix("tool:")
    assert pending.schema is not None and pending.schema["required"] == ["to", "subject", "body"]
    assert pending.edits is False
    [turn2] = [
        c
        for c in read(workers.tmp, "model_calls.jsonl")
        if c["key"].startswith(approved) and c["turn"] == 2
    ]
    assert turn2["nonce"] in pending.proposed["body"]  # what the model answered, once

    # decided while no worker runs: an edit is refused (never accepted and then ignored)
    change = {**pending.proposed, "body": "Something else"}
    with pytest.raises(EditNotAllowed, match="may be approved or rejected but not edited"):
        client.sync.edit(approved, pending.key, change, by="alice")
    client.sync.approve(approved, pending.key, by="alice", reason="fine")
    [other] = client.sync.pending_approvals(run_id=rejected)
    client.sync.reject(rejected, other.key, by="bob", reason="the refund is not approved yet")
    assert sent(workers.tmp) == []

    second = workers.start()
    wait_for(client, [approved, rejected], RunStatus.COMPLETED, workers)

    assert [(t["to"], t["body"], t["pid"]) for t in sent(workers.tmp)] == [
        ("dana@example.com", pending.proposed["body"], second.pid)
    ], "the approved email, sent once, by the new worker"
    lookups = [t for t in read(workers.tmp, "tools.jsonl") if t["tool"] == "lookup_customer"]
    assert [t["pid"] for t in lookups] == [first.pid, first.pid]  # never again on replay
    for run_id in (approved, rejected):
        assert model_turns(workers.tmp, run_id) == [1, 2, 3]
    by_pid = Counter(c["pid"] for c in read(workers.tmp, "model_calls.jsonl"))
    assert by_pid == Counter({first.pid: 4, second.pid: 2})

    assert client.sync.result(approved) == (
        f"done: sent to dana@example.com: {pending.proposed['body']}"
    )
    # the refusal reached the model as the tool's output, with who and why; it went on
    assert client.sync.result(rejected) == (
        "done: bob rejected this tool call: the refund is not approved yet. It was not run."
    )


# in one process -------------------------------------------------------------------------


@pytest.fixture
async def engine(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Engine]:
    """An engine with a worker in this process, on each backend."""
    monkeypatch.setattr(world, "OUT", tmp_path)
    eng = Engine(store_url, poll_interval=0.01)
    eng.workflow("support_openai_agents")(WF)
    async with eng:
        yield eng


async def test_two_calls_in_one_response_are_asked_together(engine: Engine, tmp_path: Path) -> None:
    run = await engine.start(WF, "write two emails")
    assert (await engine.settle(run.id, timeout=10)).status is RunStatus.WAITING
    pending = await engine.pending_approvals(run_id=run.id)
    assert [p.proposed["to"] for p in pending] == ["dana@example.com", "lee@example.com"]
    history = await engine.history(run.id)
    assert len([e for e in history if e.type == "approval_requested"]) == 2
    assert not [e for e in history if e.type == "approval_decided"]

    await engine.approve(run.id, pending[1].key, by="bob")
    assert (await engine.settle(run.id, timeout=10)).status is RunStatus.WAITING
    assert sent(tmp_path) == []  # each decided on its own: one is still open
    await engine.reject(run.id, pending[0].key, by="bob", reason="wrong address")
    result = await engine.result(run.id, timeout=10)

    assert [(t["to"], t["body"]) for t in sent(tmp_path)] == [
        ("lee@example.com", pending[1].proposed["body"])
    ]
    assert result == (
        "done: bob rejected this tool call: wrong address. It was not run.; "
        f"sent to lee@example.com: {pending[1].proposed['body']}"
    )
    assert model_turns(tmp_path, run.id) == [1, 2, 3]


async def test_changes_requested_reach_the_model_as_a_refusal(engine: Engine) -> None:
    run = await engine.start(WF, "write to dana")
    await engine.settle(run.id, timeout=10)
    [pending] = await engine.pending_approvals(run_id=run.id)
    await engine.request_changes(run.id, pending.key, by="carol", reason="mention the order")
    result = await engine.result(run.id, timeout=10)
    assert result == (
        "done: carol asked for changes to this tool call: mention the order. It was not run."
    )
