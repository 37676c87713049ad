"""The approval inbox and single approvals, as the engine's `models.Approval`.

A token with the `read` scope sees everything. A token with only `decide` sees what it
may decide: its own inbox (`approver` is its name) and the pending approvals in it (or
open to anyone), so one token lets an approver see and decide.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from signoff import errors, models
from signoff.server import auth, deps, problems, schemas, views

router = APIRouter(tags=["approvals"])
Reader = Annotated[auth.Principal, Depends(auth.require("read"))]
Viewer = Annotated[auth.Principal, Depends(auth.require_any("read", "decide"))]


@router.get("/approvals", response_model=schemas.ApprovalPage, operation_id="list_approvals")
async def inbox(
    request: Request, who: Viewer, query: Annotated[schemas.InboxQuery, Query()]
) -> schemas.ApprovalPage:
    """Approvals waiting for a decision, oldest first (or `order=urgent`: soonest
    deadline first, none last, then oldest), one page at a time.

    `approver`: those this person may decide (named, by role, after an escalation, or open
    to anyone and not requested by them);
    `role`: those named for `role:ROLE`; `older_than`: requested longer ago than this
    duration; `overdue`: only those past their deadline. Values over 64 KiB of JSON are
    truncated (see `$truncated`)."""
    approver = query.approver
    if not who.allows("read"):
        if approver not in (None, who.name):
            raise problems.Problem(
                403, "forbidden", "without the 'read' scope a token sees only its own inbox"
            )
        approver = who.name
    views.check_inbox_cursor(query.cursor)
    page = await deps.engine(request).pending_approvals(
        approver=approver,
        role=query.role,
        workflow=query.workflow,
        key_prefix=query.key_prefix,
        run_id=None if query.run_id is None else await deps.full_run_id(query.run_id, request),
        older_than=query.older_than,
        overdue=query.overdue,
        order=query.order,
        limit=query.limit,
        cursor=query.cursor,
    )
    return schemas.ApprovalPage(
        items=[views.clip_approval(a) for a in page], next_cursor=page.next_cursor
    )


@router.get(
    "/runs/{run_id:path}/approvals/{key:path}",
    response_model=models.Approval,
    operation_id="get_approval",
)
async def get_approval(
    run_id: deps.RunId, key: str, request: Request, who: Viewer
) -> models.Approval:
    """The approval's latest round, whole (with `digest`, `votes`, `stages`)."""
    approval = await latest_approval(request, run_id, key)
    await _check_may_read(request, who, approval)
    return approval


@router.get(
    "/runs/{run_id:path}/approvals",
    response_model=list[models.Approval],
    operation_id="list_run_approvals",
)
async def run_approvals(run_id: deps.RunId, request: Request, who: Reader) -> list[models.Approval]:
    """Every approval round of the run, decided or not (large values truncated)."""
    found = await deps.engine(request).approvals(run_id)
    return [views.clip_approval(a) for a in found]


async def latest_approval(request: Request, run_id: str, key: str) -> models.Approval:
    rounds = [a for a in await deps.engine(request).approvals(run_id) if a.key == key]
    if not rounds:
        raise errors.ApprovalNotFound(
            f"run {run_id} has no approval {key!r}", run_id=run_id, key=key
        )
    return max(rounds, key=lambda a: a.round)


async def _check_may_read(request: Request, who: auth.Principal, approval: models.Approval) -> None:
    if who.allows("read"):
        return
    if approval.status is models.ApprovalStatus.PENDING:
        if not approval.approvers:  # anyone may decide it
            return
        mine = await deps.engine(request).pending_approvals(
            approver=who.name, run_id=approval.run_id, key_prefix=approval.key, limit=500
        )
        if any(a.key == approval.key for a in mine):
            return
    raise problems.Problem(
        403, "forbidden", "without the 'read' scope a token sees only what it may decide"
    )
