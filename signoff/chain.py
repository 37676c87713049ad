"""Approval chains: stages asked in turn, declared in one call (`ctx.approval_chain`).

A chain is ordinary workflow code over single approvals, so it replays like any other:
stage `finance` of chain `refund` is the approval `refund/finance`. A stage whose `when`
says no is skipped; the first stage that does not approve ends the chain. An edit at one
stage becomes the proposal of the next. Each request records where the chain stands
(`Approval.stage`, `Approval.stages`), which the inbox shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from signoff import errors, models, policy

if TYPE_CHECKING:
    from signoff.context import Context


async def run(
    ctx: Context, key: str, stages: Sequence[policy.Stage], *, summary: str, proposed: Any
) -> models.Decision:
    _check(stages)
    value = proposed
    states: list[dict[str, Any]] = [{"name": s.name, "status": "not_reached"} for s in stages]
    decision: models.Decision | None = None
    for index, stage in enumerate(stages):
        if stage.when is not None and not stage.when(value):
            states[index] = {"name": stage.name, "status": "skipped"}
            continue
        states[index] = {"name": stage.name, "status": "waiting"}
        where = {"chain": key, "name": stage.name, "index": index, "stages": list(states)}
        decision = await ctx._approval(
            f"{key}/{stage.name}",
            summary=stage.summary if stage.summary is not None else summary,
            proposed=value,
            timeout=stage.timeout,
            rules=dict(
                approvers=stage.approvers,
                quorum=stage.quorum,
                reject_quorum=1,
                allow_self_approval=stage.allow_self_approval,
                on_timeout=stage.on_timeout,
                escalate_after=stage.escalate_after,
                escalate_to=stage.escalate_to,
                remind_every=stage.remind_every,
                schema=stage.schema,
            ),
            stage=where,
        )
        states[index] = {"name": stage.name, "status": decision.status.value, "by": decision.by}
        if not decision.approved:
            return decision
        value = decision.value
    if decision is None:  # the conditions say no stage is needed
        return models.Decision(
            key=key,
            status=models.DecisionStatus.APPROVED,
            value=proposed,
            original=proposed,
            reason="no stage of the chain applies",
            at=ctx.now(),
        )
    return decision


def _check(stages: Sequence[policy.Stage]) -> None:
    if not stages or not all(isinstance(s, policy.Stage) for s in stages):
        raise errors.InvalidArgument("stages must be a non-empty list of signoff.Stage")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise errors.InvalidArgument(f"stage names must be unique within a chain: {names}")
