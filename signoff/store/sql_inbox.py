"""The inbox: pending approvals filtered by approver, role, workflow, key prefix and age,
one page at a time, with a stable cursor and a total count.

Order is (requested_at, run_id, key), unique among pending approvals (one pending round
per key), so a cursor is the last row's triple and the next page starts after it
(keyset pagination: stable while approvals arrive and leave, and as fast on page 1,000 as
on page 1). Filters by person or role read `approval_inbox` (one row per person and role
that may decide a pending approval, kept in step by `sql_approvals`); the others read the
partial indexes on pending approvals. `total` counts every match, ignoring the cursor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from signoff import models, policy
from signoff.store.sql import APPROVAL_COLUMNS, Op, Query, row_to_approval
from signoff.store.sql_approvals import votes_of


@dataclass(frozen=True, kw_only=True, slots=True)
class InboxQuery:
    approver: str | None = None
    role: str | None = None
    workflow: str | None = None
    key_prefix: str | None = None
    run_id: str | None = None
    requested_before: float | None = None
    after: tuple[float, str, str] | None = None
    limit: int = 100


def page(query: InboxQuery) -> Op[models.ApprovalPage]:
    principal = query.approver
    also_role = None
    if principal is None and query.role is not None:
        principal = policy.ROLE + query.role
    elif query.role is not None:
        also_role = policy.ROLE + query.role
    if principal is not None:
        source, cols = "approval_inbox i", "i"
        where: list[str] = ["i.principal = ?"]
        params: list[Any] = [principal]
    else:
        source, cols = "approvals i", "i"
        where, params = ["i.status = 'pending'"], []
    if also_role is not None:
        where.append(
            "EXISTS (SELECT 1 FROM approval_inbox j WHERE j.principal = ? AND "
            "j.requested_at = i.requested_at AND j.run_id = i.run_id AND j.key = i.key)"
        )
        params.append(also_role)
    for column, value in (("workflow", query.workflow), ("run_id", query.run_id)):
        if value is not None:
            where.append(f"{cols}.{column} = ?")
            params.append(value)
    if query.key_prefix:
        where.append(f"substr({cols}.key, 1, ?) = ?")
        params += [len(query.key_prefix), query.key_prefix]
    if query.requested_before is not None:
        where.append(f"{cols}.requested_at < ?")
        params.append(query.requested_before)
    count = yield Query(f"SELECT COUNT(*) FROM {source} WHERE {' AND '.join(where)}", params)
    total = int(count.rows[0][0])
    if query.after is not None:
        where.append(f"({cols}.requested_at, {cols}.run_id, {cols}.key) > (?, ?, ?)")
        params += list(query.after)
    order = f"ORDER BY {cols}.requested_at, {cols}.run_id, {cols}.key LIMIT ?"
    if principal is not None:
        columns = ", ".join(f"a.{c.strip()}" for c in APPROVAL_COLUMNS.split(","))
        sql = (
            f"SELECT {columns} FROM {source} JOIN approvals a ON a.run_id = i.run_id "
            f"AND a.key = i.key AND a.round = i.round WHERE {' AND '.join(where)} {order}"
        )
    else:
        sql = f"SELECT {APPROVAL_COLUMNS} FROM {source} WHERE {' AND '.join(where)} {order}"
    res = yield Query(sql, (*params, query.limit + 1))
    rows = res.rows[: query.limit]
    items = yield from with_votes([row_to_approval(r) for r in rows])
    cursor = None
    if len(res.rows) > query.limit and items:
        last = rows[-1]
        cursor = policy.encode_cursor(last[10], last[0], last[2])
    return models.ApprovalPage(items, next_cursor=cursor, total=total)


def with_votes(approvals: list[models.Approval]) -> Op[list[models.Approval]]:
    """The approvals, each with the votes cast so far (read only where a quorum needs
    several, or once decided by a person)."""
    out = []
    for approval in approvals:
        if approval.quorum > 1 or approval.decided_by is not None:
            votes = yield from votes_of(approval.run_id, approval.key, approval.round)
            approval = dataclasses.replace(approval, votes=votes)
        out.append(approval)
    return out


def run_approvals(run_id: str) -> Op[list[models.Approval]]:
    res = yield Query(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE run_id = ? ORDER BY requested_at, round",
        (run_id,),
    )
    return (yield from with_votes([row_to_approval(r) for r in res.rows]))
