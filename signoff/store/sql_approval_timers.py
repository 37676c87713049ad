"""Store operations on an approval's timers other than the deadline's outcome itself:
escalation (more people may decide) and reminders, on the run's one timer.

`runs.wake_at` (and the open journal entry's `wake_at`, which a re-park restores) holds
the earliest of deadline, escalation and next reminder. When it fires, `fire_timer`
closes the round if the deadline passed (`sql_approvals.time_out`); otherwise it does
what is due, moves the timer to the next time, and leaves the run parked.
"""

from __future__ import annotations

from typing import Any

from signoff import outbox, policy
from signoff.store import sql_audit, sql_outbox
from signoff.store.sql import WAKE, Op, Query, dump_json, history
from signoff.store.sql_approvals import (
    ROUND_COLUMNS,
    Round,
    add_to_inbox,
    earliest,
    time_out,
    votes_of,
)


def fire_timer(run_id: str, key: str, seq: int, now: float) -> Op[bool]:
    """Handle a due timer of the pending approval the run waits on. True: the round was
    closed (deadline), wake the run; False: it escalated or reminded and keeps waiting."""
    res = yield Query(
        f"SELECT {ROUND_COLUMNS}, escalate_at, remind_at, requested_at, workflow FROM approvals "
        "WHERE run_id = ? AND key = ? AND seq = ? AND status = 'pending'",
        (run_id, key, seq),
    )
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
