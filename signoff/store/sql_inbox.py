"""The inbox: pending approvals filtered by approver, role, workflow, key prefix, age and
deadline, one page at a time, with a stable cursor and a total count.

Two orders. "oldest": (requested_at, run_id, key), unique among pending approvals (one
pending round per key). "urgent": the deadline first (soonest first; none after every
deadline), then the same triple. A cursor is the last row's sort key and the next page
starts after it (keyset pagination: stable while approvals arrive and leave, and as fast
on page 1,000 as on page 1). Filters by person or role read `approval_inbox` (one row per
person and role that may decide a pending approval, kept in step by `sql_approvals`, with
the deadline as `due`); the others read the partial indexes on pending approvals.
`total` counts every match, ignoring the cursor.

`decided`: the approvals one person decided or voted on, newest vote first.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from signoff import models, policy
from signoff.store.sql import APPROVAL_COLUMNS, Op, Query, row_to_approval
from signoff.store.sql_approvals import NO_DEADLINE, votes_of


@dataclass(frozen=True, kw_only=True, slots=True)
class InboxQuery:
    approver: str | None = None
    role: str | None = None
    workflow: str | None = None
    key_prefix: str | None = None
    run_id: str | None = None
    requested_before: float | None = None
    due_before: float | None = None  # overdue: the deadline passed before this time
    order: Literal["oldest", "urgent"] = "oldest"
    after: tuple[float, str, str] | None = None
    after_due: float | None = None  # with `after`, in the urgent order
    limit: int = 100


_OPEN = f"i.principal = '{policy.ANYONE}'"
# barred to them, or in their inbox already (named after an escalation)
_NOT_BARRED = (
    "NOT EXISTS (SELECT 1 FROM approval_inbox x WHERE x.principal IN (?, ?) AND "
    "x.requested_at = i.requested_at AND x.run_id = i.run_id AND x.key = i.key)"
)
_KEY = "i.requested_at, i.run_id, i.key"
# the inbox rows' due (the index's column) or the approvals' (their expression index)
# (written as in migration 0011: SQLite matches an expression index by its text)
_DUE_INBOX, _DUE_APPROVALS = "i.due", "COALESCE(i.deadline, 1e300)"
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
    due = _DUE_APPROVALS if principal is None else _DUE_INBOX
    if query.due_before is not None:
        shared.append(f"{due} < ?")
        params.append(query.due_before)
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
    res = yield Query(*_rows_sql(query, sources, due))
    rows = res.rows[: query.limit]
    items = yield from with_votes([row_to_approval(r) for r in rows])
    cursor = None
    if len(res.rows) > query.limit and items:
        last = rows[-1]
        urgent = last[-1] if query.order == "urgent" else None
        cursor = policy.encode_cursor(last[10], last[0], last[2], due=urgent)
    return models.ApprovalPage(items, next_cursor=cursor, total=total)


def _rows_sql(
    query: InboxQuery, sources: list[tuple[str, list[str], list[Any]]], due: str
) -> tuple[str, list[Any]]:
    """The page's rows (one more than `limit`), each ending with its due, in the order."""
    key, after_args = _KEY, [] if query.after is None else list(query.after)
    after = [] if query.after is None else [f"({key}) > (?, ?, ?)"]
    if query.order == "urgent":
        key = f"{due}, {_KEY}"
        if query.after is not None:
            last_due = NO_DEADLINE if query.after_due is None else query.after_due
            # the bound on `due` alone lets SQLite seek its expression index there
            after = [f"{due} >= ?", f"({key}) > (?, ?, ?, ?)"]
            after_args = [last_due, last_due, *after_args]
    parts, values = [], []
    for table, where, args in sources:
        inbox = table.startswith("approval_inbox")
        columns, join = (_JOINED, _JOIN) if inbox else (APPROVAL_COLUMNS, "")
        parts.append(
            f"SELECT {columns}, {due} AS due_at FROM {table}{join} "
            f"WHERE {' AND '.join([*where, *after])} ORDER BY {key} LIMIT ?"
        )
        values += [*args, *after_args, query.limit + 1]
    if len(parts) == 1:
        return parts[0], values
    # each part is ordered and limited; merge them
    merged = " UNION ALL ".join(f"SELECT * FROM ({p}) AS part{n}" for n, p in enumerate(parts))
    outer = "requested_at, run_id, key"
    if query.order == "urgent":
        outer = f"due_at, {outer}"
    return f"SELECT * FROM ({merged}) AS merged ORDER BY {outer} LIMIT ?", [
        *values,
        query.limit + 1,
    ]


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


@dataclass(frozen=True, kw_only=True, slots=True)
class DecidedQuery:
    voter: str
    after: tuple[float, str, str, int] | None = None  # the last row's (at, run, key, round)
    limit: int = 50


def decided(query: DecidedQuery) -> Op[models.ApprovalPage]:
    """The approval rounds `voter` decided or voted on, newest vote first, with a total."""
    count = yield Query("SELECT COUNT(*) FROM approval_votes WHERE voter = ?", (query.voter,))
    where, args = "v.voter = ?", list[Any]([query.voter])
    if query.after is not None:
        where += " AND (v.at, v.run_id, v.key, v.round) < (?, ?, ?, ?)"
        args += list(query.after)
    res = yield Query(
        f"SELECT {_JOINED}, v.at FROM approval_votes v JOIN approvals a ON a.run_id = v.run_id "
        f"AND a.key = v.key AND a.round = v.round WHERE {where} "
        "ORDER BY v.at DESC, v.run_id DESC, v.key DESC, v.round DESC LIMIT ?",
        [*args, query.limit + 1],
    )
    rows = res.rows[: query.limit]
    items = yield from with_votes([row_to_approval(r) for r in rows])
    cursor = None
    if len(res.rows) > query.limit and rows:
        last = rows[-1]
        cursor = policy.encode_decided_cursor(last[-1], last[0], last[2], last[3])
    return models.ApprovalPage(items, next_cursor=cursor, total=int(count.rows[0][0]))
