"""Recorded journals replayed against the current code: a change to a workflow that
would strand its paused runs fails here, before it reaches a deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from examples import refund_review
from signoff import Context, NonDeterminismError
from signoff.testing import replay

HERE = Path(__file__).parent


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / name).read_text())
    return data


@pytest.mark.parametrize("name", ["refund_waiting.json", "refund_completed.json"])
async def test_refund_review_replays_its_recorded_journals(name: str) -> None:
    await replay(refund_review.refund_review, recorded(name))


async def test_replay_runs_no_step_and_writes_nothing() -> None:
    calls: list[str] = []

    async def load_ticket(ticket_id: str) -> dict[str, Any]:
        calls.append(ticket_id)
        return {}

    async def refund_review(ctx: Context, ticket_id: str) -> None:
        await ctx.step(load_ticket, ticket_id, name="load_ticket")
        await ctx.step(load_ticket, ticket_id, name="draft_recommendation")
        await ctx.approval("manager")
        await ctx.step(load_ticket, ticket_id, name="never_recorded")

    await replay(refund_review, recorded("refund_waiting.json"))
    assert calls == []


async def test_a_reordered_workflow_is_caught() -> None:
    async def draft_recommendation(ticket: Any) -> dict[str, Any]:
        return {}

    async def load_ticket(ticket_id: str) -> dict[str, Any]:
        return {}

    async def refund_review(ctx: Context, ticket_id: str) -> None:  # steps swapped
        await ctx.step(draft_recommendation, {}, name="draft_recommendation")
        await ctx.step(load_ticket, ticket_id, name="load_ticket")

    with pytest.raises(NonDeterminismError) as caught:
        await replay(refund_review, recorded("refund_completed.json"))
    assert caught.value.seq == 0
    assert caught.value.expected == "step 'load_ticket'"
    assert caught.value.found == "step 'draft_recommendation'"


async def test_a_removed_step_is_caught_at_the_end() -> None:
    async def refund_review(ctx: Context, ticket_id: str) -> dict[str, Any]:
        return {}

    with pytest.raises(NonDeterminismError, match="the end of the workflow"):
        await replay(refund_review, recorded("refund_completed.json"))
