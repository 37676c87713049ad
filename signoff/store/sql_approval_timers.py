"""Store operations on an approval's timers other than the deadline's outcome itself:
escalation (more people may decide) and reminders, on the run's one timer.

`runs.wake_at` (and the open journal entry's `wake_at`, which a re-park restores) holds
the earliest of deadline, escalation and next reminder. When it fires, `fire_timer`
closes the round if the deadline passed (`sql_approvals.time_out`); otherwise it does
what is due, moves the timer to the next time, and leaves the run parked.

A storm of timers (many deadlines in the same second) fires in batches: `prefetch` reads
what the batch's timers will ask for (their rounds, votes and audit chain heads) in three
statements, and `answering` hands those rows to each timer's operation in place of its
own reads. On PostgreSQL that is three round trips for the batch instead of three per
timer. A read that was not prefetched (or whose text changed) goes to the database as
before, so the prefetch can only save time, never change an outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from signoff import outbox, policy
from signoff.store import sql_audit, sql_outbox
from signoff.store.sql import WAKE, Op, Query, Result, dump_json, history
from signoff.store.sql_approvals import (
    ROUND_COLUMNS,
    Round,
    add_to_inbox,
    earliest,
    time_out,
    votes_of,
)

T = TypeVar("T")

# The reads a timer's operation makes, as written where they are made (`fire_timer`,
# `sql_approvals.votes_of`, `sql_audit.append`); `prefetch` answers them for a batch.
PENDING_ROUND = (
    f"SELECT {ROUND_COLUMNS}, escalate_at, remind_at, requested_at, workflow FROM approvals "
    "WHERE run_id = ? AND key = ? AND seq = ? AND status = 'pending'"
)
VOTES = (
    "SELECT voter, vote, reason, at, value FROM approval_votes "
    "WHERE run_id = ? AND key = ? AND round = ? ORDER BY at, voter"
)
AUDIT_HEAD = "SELECT seq, hash FROM audit WHERE chain = ? ORDER BY seq DESC LIMIT 1"

Answers = dict[tuple[str, tuple[Any, ...]], list[tuple[Any, ...]]]


def prefetch(timers: Sequence[tuple[str, str, int]]) -> Op[Answers]:
    """For due approval timers (run id, key, journal position), the rows their reads
    will find: the pending rounds, their votes and the runs' audit chain heads, in
    three statements (the runs' rows are held, so nothing changes them meanwhile)."""
    answers: Answers = {}
    if not timers:
        return answers
    run_ids = sorted({run_id for run_id, _, _ in timers})
    marks = ", ".join("?" for _ in run_ids)
    wanted = set(timers)
    res = yield Query(
        f"SELECT run_id, key, {ROUND_COLUMNS}, escalate_at, remind_at, requested_at, workflow "
        f"FROM approvals WHERE run_id IN ({marks}) AND status = 'pending'",
        tuple(run_ids),
    )
    rounds: dict[tuple[str, str, int], int] = {}
    for row in res.rows:
        run_id, key, round_, seq = row[0], row[1], row[2], row[3]
        if (run_id, key, seq) in wanted:
            answers[(PENDING_ROUND, (run_id, key, seq))] = [tuple(row[2:])]
            rounds[(run_id, key, round_)] = seq
    for run_id, key, seq in timers:  # no pending round: the timer finds nothing
        answers.setdefault((PENDING_ROUND, (run_id, key, seq)), [])
    for run_id, key, round_ in rounds:
        answers[(VOTES, (run_id, key, round_))] = []
    if rounds:
        res = yield Query(
            "SELECT run_id, key, round, voter, vote, reason, at, value FROM approval_votes "
            f"WHERE run_id IN ({marks}) ORDER BY run_id, key, round, at, voter",
            tuple(run_ids),
        )
        for row in res.rows:
            votes = answers.get((VOTES, (row[0], row[1], row[2])))
            if votes is not None:
                votes.append(tuple(row[3:]))
    res = yield Query(
        f"SELECT chain, seq, hash FROM audit WHERE chain IN ({marks}) "
        "AND seq = (SELECT MAX(seq) FROM audit AS head WHERE head.chain = audit.chain)",
        tuple(run_ids),
    )
    heads = {row[0]: [(row[1], row[2])] for row in res.rows}
    for run_id in run_ids:
        answers[(AUDIT_HEAD, (run_id,))] = heads.get(run_id, [])
    return answers


def answering(op: Op[T], answers: Answers) -> Op[T]:
    """Run `op`, answering each read found in `answers` from there, once (a later read
    of the same may see what `op` wrote since: it goes to the database)."""
    try:
        query = next(op)
        while True:
            rows = answers.pop((query.sql, tuple(query.params)), None) if query.wait else None
            result = Result(rows, len(rows)) if rows is not None else (yield query)
            query = op.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def fire_timer(run_id: str, key: str, seq: int, now: float) -> Op[bool]:
    """Handle a due timer of the pending approval the run waits on. True: the round was
    closed (deadline), wake the run; False: it escalated or reminded and keeps waiting."""
    res = yield Query(PENDING_ROUND, (run_id, key, seq))
    if not res.rows:
        return True
    row = res.rows[0]
    r = Round(*row[:13])
    escalate_at, remind_at, requested_at, workflow = row[13:]
    if r.deadline is not None and r.deadline <= now:
        yield from time_out(run_id, key, r, now)
        return True
    rules = r.rules or {}
    if escalate_at is not None and escalate_at <= now:
        rules = yield from _escalate(run_id, key, r, rules, requested_at, workflow, now)
        escalate_at = None
    if remind_at is not None and remind_at <= now:
        yield from _remind(run_id, key, r, rules, now)
        every = rules["remind_every"]
        remind_at += every * (int((now - remind_at) // every) + 1)
    yield Query(
        "UPDATE approvals SET policy = ?, escalate_at = ?, remind_at = ? "
        "WHERE run_id = ? AND key = ? AND round = ?",
        (dump_json(rules), escalate_at, remind_at, run_id, key, r.round),
        wait=False,
    )
    wake_at = earliest(r.deadline, escalate_at, remind_at)
    yield Query(
        f"UPDATE runs SET wake_at = {WAKE} WHERE id = ?", (wake_at, wake_at, run_id), wait=False
    )
    yield Query(
        "UPDATE journal SET wake_at = ? WHERE run_id = ? AND seq = ?",
        (wake_at, run_id, seq),
        wait=False,
    )
    return False


def _escalate(
    run_id: str,
    key: str,
    r: Round,
    rules: dict[str, Any],
    requested_at: float,
    workflow: str,
    now: float,
) -> Op[dict[str, Any]]:
    """Add the escalation targets to who may decide, keeping everyone named before."""
    added = [a for a in rules.get("escalate_to", []) if a not in rules.get("approvers", [])]
    rules = dict(rules, approvers=[*rules.get("approvers", []), *added], escalated=True)
    if rules.get("eligible") is not None:
        rules["eligible"] = sorted({*rules["eligible"], *rules.get("escalate_people", [])})
    res = yield Query("SELECT requested_by FROM runs WHERE id = ?", (run_id,))
    principals = policy.inbox_principals(
        {**rules, "eligible": rules.get("eligible") or rules.get("escalate_people", [])},
        res.rows[0][0],
    )
    yield from add_to_inbox(principals, requested_at, run_id, key, r.round, workflow, r.deadline)
    data = {"key": key, "round": r.round, "added": added, "people": rules.get("escalate_people")}
    yield from sql_audit.recorded(run_id, now, "approval_escalated", None, data)
    yield from sql_outbox.enqueue(
        run_id, outbox.APPROVAL_ESCALATED, now, {**data, "summary": r.summary},
        workflow=workflow, key=key, approvers=added, requested_by=res.rows[0][0],
    )  # fmt: skip
    return rules


def _remind(run_id: str, key: str, r: Round, rules: dict[str, Any], now: float) -> Op[None]:
    voted = {v.by for v in (yield from votes_of(run_id, key, r.round))}
    res = yield Query(
        "SELECT principal FROM approval_inbox WHERE run_id = ? AND key = ? ORDER BY principal",
        (run_id, key),
    )
    to = [p for (p,) in res.rows if p not in voted and p[:1] not in (policy.ANYONE, policy.NOT)]
    data = {"key": key, "round": r.round, "to": to}
    yield history(run_id, now, "approval_reminder", None, data)
    yield from sql_outbox.enqueue(
        run_id, outbox.APPROVAL_REMINDER, now, {**data, "summary": r.summary}, key=key,
        approvers=to,
    )  # fmt: skip
