"""Who may see and who may decide an approval, as the inbox decides it.

A person sees an approval when they may decide it (named, through a role, escalated to
them, or anyone may), took part in it (voted, decided), or hold the `read` scope. The
engine checks the decision itself again when it is taken (authorisation at decision
time); the inbox checks first so that a crafted request for someone else's approval
gets the same "not found" as one that does not exist.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from signoff import errors, models, policy
from signoff.engine import Engine
from signoff.server.inbox import session


async def latest(engine: Engine, run_id: str, key: str) -> models.Approval | None:
    """The approval's latest round, or None when the run or the key is unknown."""
    try:
        rounds = [a for a in await engine.approvals(run_id) if a.key == key]
    except (errors.RunNotFound, errors.InvalidArgument):
        return None
    return max(rounds, key=lambda a: a.round) if rounds else None


def _named(engine: Engine, name: str, approvers: list[str]) -> bool:
    for who in approvers:
        if who == name:
            return True
        if who.startswith(policy.ROLE):
            try:
                if name in engine.directory.members(who[len(policy.ROLE) :]):
                    return True
            except KeyError:
                continue
    return False


async def in_inbox(engine: Engine, name: str, approval: models.Approval) -> bool:
    """Whether the pending `approval` is in `name`'s inbox (named, role, escalation)."""
    page = await engine.pending_approvals(
        approver=name, run_id=approval.run_id, key_prefix=approval.key, limit=50
    )
    return any(a.key == approval.key for a in page)


async def may_see(engine: Engine, who: session.Viewer, approval: models.Approval) -> bool:
    if who.reads_all:
        return True
    if who.name is None:
        return False
    if not approval.approvers and approval.status is models.ApprovalStatus.PENDING:
        return True
    took_part = who.name == approval.decided_by or any(v.by == who.name for v in approval.votes)
    if took_part or _named(engine, who.name, approval.approvers):
        return True
    return approval.status is models.ApprovalStatus.PENDING and await in_inbox(
        engine, who.name, approval
    )


async def may_decide(engine: Engine, who: session.Viewer, approval: models.Approval) -> bool:
    """Whether to offer (and accept) decisions; the engine has the last word."""
    if approval.status is not models.ApprovalStatus.PENDING or not who.may_decide:
        return False
    if who.name is None or not approval.approvers:
        return True
    return await in_inbox(engine, who.name, approval)


def href(run_id: str, key: str) -> str:
    return "/inbox/approval?" + urllib.parse.urlencode({"run": run_id, "key": key})


def outcome(approval: models.Approval) -> dict[str, Any]:
    return {
        "run_id": approval.run_id,
        "key": approval.key,
        "status": approval.status.value,
        "by": approval.decided_by,
    }


def closed(approval: models.Approval) -> str:
    by = f" by {approval.decided_by}" if approval.decided_by else ""
    return f"This request is already {approval.status.value.replace('_', ' ')}{by}."
