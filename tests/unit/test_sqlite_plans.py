"""The queries an idle worker repeats take the partial index of due timers on SQLite,
whatever the number of waiting runs (without statistics the planner preferred the status
index, and walked every waiting run: 100 - 300 ms at a million)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from signoff import Engine
from signoff.store import sql_runs, sql_waits
from signoff.store.sql import SQLITE


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
