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


_OPEN = f"i.principal = '{policy.ANYONE}'"
# barred to them, or in their inbox already (named after an escalation)
_NOT_BARRED = (
    "NOT EXISTS (SELECT 1 FROM approval_inbox x WHERE x.principal IN (?, ?) AND "
    "x.requested_at = i.requested_at AND x.run_id = i.run_id AND x.key = i.key)"
)
_ORDER = "ORDER BY i.requested_at, i.run_id, i.key LIMIT ?"
_KEYSET = "(i.requested_at, i.run_id, i.key) > (?, ?, ?)"
_JOINED = ", ".join(f"a.{c.strip()}" for c in APPROVAL_COLUMNS.split(","))


def page(query: InboxQuery) -> Op[models.ApprovalPage]:
    principal = query.approver
    also_role = None
    if principal is None and query.role is not None:
        principal = policy.ROLE + query.role
    elif query.role is not None:
        also_role = policy.ROLE + query.role
    shared: list[str] = []  # the filters every source takes
    params: list[Any] = []
    if also_role is not None:
        shared.append(
            "EXISTS (SELECT 1 FROM approval_inbox j WHERE j.principal = ? AND "
            "j.requested_at = i.requested_at AND j.run_id = i.run_id AND j.key = i.key)"
        )
        params.append(also_role)
    for column, value in (("workflow", query.workflow), ("run_id", query.run_id)):
        if value is not None:
            shared.append(f"i.{column} = ?")
            params.append(value)
    if query.key_prefix:
        shared.append("substr(i.key, 1, ?) = ?")
        params += [len(query.key_prefix), query.key_prefix]
    if query.requested_before is not None:
        shared.append("i.requested_at < ?")
        params.append(query.requested_before)
    # (table, filters, their parameters) for each ordered source of the page
    sources: list[tuple[str, list[str], list[Any]]]
    if principal is None:
        sources = [("approvals i", ["i.status = 'pending'", *shared], params)]
    else:
        sources = [("approval_inbox i", ["i.principal = ?", *shared], [principal, *params])]
        if query.approver is not None:  # and the approvals open to anyone not barred to them
            barred = [policy.NOT + query.approver, query.approver]
            sources.append(("approval_inbox i", [_OPEN, _NOT_BARRED, *shared], [*barred, *params]))
    total = 0
    for table, where, args in sources:
        count = yield Query(f"SELECT COUNT(*) FROM {table} WHERE {' AND '.join(where)}", args)
        total += int(count.rows[0][0])
    after = [] if query.after is None else [_KEYSET]
    after_args = [] if query.after is None else list(query.after)
    parts, values = [], []
    for table, where, args in sources:
        columns, join = (APPROVAL_COLUMNS, "") if principal is None else (_JOINED, _JOIN)
        parts.append(
            f"SELECT {columns} FROM {table}{join} WHERE {' AND '.join([*where, *after])} {_ORDER}"
        )
        values += [*args, *after_args, query.limit + 1]
    if len(parts) == 1:
        sql = parts[0]
    else:  # each part is ordered and limited; merge them
        sql = " UNION ALL ".join(f"SELECT * FROM ({p}) AS part{n}" for n, p in enumerate(parts))
        sql = f"SELECT * FROM ({sql}) AS merged ORDER BY requested_at, run_id, key LIMIT ?"
        values.append(query.limit + 1)
    res = yield Query(sql, values)
    rows = res.rows[: query.limit]
    items = yield from with_votes([row_to_approval(r) for r in rows])
    cursor = None
    if len(res.rows) > query.limit and items:
        last = rows[-1]
        cursor = policy.encode_cursor(last[10], last[0], last[2])
    return models.ApprovalPage(items, next_cursor=cursor, total=total)


_JOIN = " JOIN approvals a ON a.run_id = i.run_id AND a.key = i.key AND a.round = i.round"


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
