"""The queries an idle worker repeats take the partial index of due timers on SQLite,
whatever the number of waiting runs (without statistics the planner preferred the status
index, and walked every waiting run: 100 - 300 ms at a million)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from signoff import DecisionStatus, Engine
from signoff.store import sql_approvals, sql_inbox, sql_runs, sql_waits
from signoff.store.sql import SQLITE, Result, resolve_entry


def first_query(op: Any) -> tuple[str, tuple[Any, ...]]:
    query = next(op)
    return SQLITE.render(query.sql), tuple(query.params)


async def test_the_timer_queries_use_the_index_of_due_timers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/plans.db"
    async with Engine(url):
        pass
    db = sqlite3.connect(tmp_path / "plans.db")
    db.executemany(  # many waiting runs, none with a timer
        "INSERT INTO runs (id, workflow, status, input, created_at, updated_at, fence) "
        "VALUES (?, 'wf', 'waiting', '[]', ?, ?, 1)",
        ((f"{i:032x}", i, i) for i in range(2000)),
    )
    db.commit()
    for sql, params in (
        first_query(sql_runs.poll(workflows=["wf"], now=5.0, owner="w")),
        first_query(sql_waits.fire_timers(now=5.0, limit=10, claim_for=None, lease_until=9.0)),
    ):
        plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "USING INDEX runs_wake" in plan, plan
        assert "runs_by_status (status=?)" not in plan.split("runs_wake")[0], plan
        db.execute(sql, params).fetchall()  # and it runs
    db.close()


def plan_of(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> str:
    return " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))


def statements(op: Any, answers: int) -> list[tuple[str, tuple[Any, ...]]]:
    """The first statements of `op`, each answered with one row holding 0 (up to
    `answers` times, or until the operation cannot go on with that answer)."""
    out = [first_query(op)]
    for _ in range(answers):
        try:
            query = op.send(Result([(0,)], 0))
        except (StopIteration, IndexError, TypeError, ValueError):
            break
        out.append((SQLITE.render(query.sql), tuple(query.params)))
    return out


DECISION: dict[str, Any] = dict(
    run_id="r",
    key="k",
    status=DecisionStatus.APPROVED,
    value_json=None,
    by="bob",
    reason=None,
    now=1.0,
    claim_for=None,
    lease_until=2.0,
)


async def test_inbox_and_approval_reads_keep_their_indexes(tmp_path: Path) -> None:
    """approval_inbox is a WITHOUT ROWID table (migration 0013): the reads of it, of the
    approvals and of the journal by their keys take their keys' indexes, an inbox page of
    one workflow still takes the index by workflow, and no read walks a whole table."""
    url = f"sqlite:///{tmp_path}/plans.db"
    async with Engine(url):
        pass
    db = sqlite3.connect(tmp_path / "plans.db")
    by_workflow = "approval_inbox_by_workflow (principal=? AND workflow=?)"
    pages: list[tuple[sql_inbox.InboxQuery, str | None]] = [
        (sql_inbox.InboxQuery(approver="bob", workflow="wf"), by_workflow),
        (sql_inbox.InboxQuery(role="r", workflow="wf"), by_workflow),
        (sql_inbox.InboxQuery(approver="bob", role="r", workflow="wf"), by_workflow),
        (sql_inbox.InboxQuery(approver="bob"), "(principal=?)"),
        (sql_inbox.InboxQuery(approver="bob", order="urgent"), "approval_inbox_urgent"),
        (sql_inbox.InboxQuery(approver="bob", order="urgent", due_before=5.0), "due<?"),
        (sql_inbox.InboxQuery(), "approvals_pending"),
        (sql_inbox.InboxQuery(order="urgent"), "approvals_pending_urgent"),
        (sql_inbox.InboxQuery(workflow="wf"), "approvals_pending_by_workflow (workflow=?)"),
    ]
    for query, index in pages:
        for sql, params in statements(sql_inbox.page(query), 2):
            plan = plan_of(db, sql, params)
            assert index is None or index in plan, (query, plan)
            # (the merged parts of two sources are scanned, being the rows read already)
            assert re.search(r"SCAN (?!part\d)\w+(?! USING)( |$)", plan) is None, (query, plan)
    keyed = [
        *statements(sql_approvals.decide(**DECISION), 2),
        *statements(sql_inbox.run_approvals("r"), 0),
        *statements(sql_runs.get_journal("r"), 0),
        ("DELETE FROM approval_inbox WHERE run_id = ? AND key = ?", ("r", "k")),
        (resolve_entry("r", 1, None, 1.0).sql, ("x", 1.0, "r", 1)),
    ]
    for sql, params in keyed:
        if not re.search(r"\b(FROM|UPDATE) (journal|approvals|approval_inbox)\b", sql):
            continue  # the run's row, its audit head
        plan = plan_of(db, SQLITE.render(sql), params)
        assert re.search(r"(PRIMARY KEY|sqlite_autoindex_\w+|by_approval) \(run_id=\?", plan), plan
    db.close()
