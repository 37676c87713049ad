"""Store operations on approvals: open a request, decide (vote), fire its timers.

Deciding is the one arbitration point: it locks the run's row, then changes the latest
round only while it is still `pending` (first writer wins). A vote that does not yet
reach the quorum is recorded and leaves the round pending. A deadline is one more
writer, through `time_out`, recorded as `expired` or as the outcome the request's
`on_timeout` names, always with `by` = "timeout policy" and `timed_out`, never as a
person's approval. Escalations and reminders fire on the same timer (`runs.wake_at` is
the earliest of deadline, escalation and next reminder; see `sql_approval_timers`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from signoff import models, outbox, policy, serialization
from signoff.store import sql_audit, sql_outbox
from signoff.store.sql import (
    Claim,
    Op,
    Query,
    Result,
    digest_text,
    dump_json,
    history,
    iso,
    policy_text,
    resolve_entry,
    stored_digest,
    stored_policy,
    wake,
)
from signoff.store.sql_runs import FINISHED

ROUND_COLUMNS = (
    "round, seq, status, summary, proposed, value, decided_by, reason, decided_at, deadline, "
    "policy, digest, timed_out"
)


@models.quick_init
@dataclass(frozen=True, slots=True)
class Opened:
    """What opening an approval did: a refusal (`problem`, `detail`) or its `wake_at`."""

    problem: str | None = None
    detail: str | None = None
    wake_at: float | None = None


@models.quick_init
@dataclass(frozen=True, slots=True)
class DecideOutcome:
    """`outcome` is one of: decided, voted, duplicate, conflict, expired, closed,
    run_not_found, approval_not_found, stale_digest, not_allowed, self_approval,
    anonymous_vote, edit_under_quorum, invalid_edit, duplicate_vote. `decision` is the
    decision now on record (if any); `detail` what the refusal needs to explain itself."""

    outcome: str
    decision: models.Decision | None = None
    claim: Claim | None = None
    pending_keys: tuple[str, ...] = ()
    detail: Any = None
    # of a decided round, for the time-to-decision metric and span
    workflow: str | None = None
    requested_at: float | None = None


@models.quick_init
@dataclass(frozen=True, slots=True)
class Round:
    round: int
    seq: int
    status: str
    summary: str
    proposed: str | None
    value: str | None
    decided_by: str | None
    reason: str | None
    decided_at: float | None
    deadline: float | None
    policy: str | None  # as stored (`sql.stored_policy`); `rules` parses it
    digest: bytes | str | None  # as stored (`sql.digest_text` shows it)
    timed_out: int
    requested_at: float | None = None  # read by `decide` only
    workflow: str | None = None

    @property
    def rules(self) -> dict[str, Any] | None:
        # A copy of the parsed policy: many approvals share one policy text.
        return None if self.policy is None else dict(_parse_policy(self.policy))


@functools.lru_cache(maxsize=512)
def _parse_policy(stored: str) -> dict[str, Any]:
    """A policy, parsed from its stored form (`sql.stored_policy`) or its text."""
    parsed: dict[str, Any] = json.loads(policy_text(stored))
    return parsed


def open_approval(
    *,
    run_id: str,
    run: Result,
    seq: int,
    key: str,
    summary: str,
    proposed_json: str | None,
    policy_json: str | None,
    deadline: float | None,
    now: float,
) -> Op[Opened]:
    """Insert the next round of approval `key` with its policy, digest and inbox rows.
    `run`: the run's `(workflow, requested_by)`, read ahead (`early`) under its lock."""
    res = yield Query(
        "SELECT round, status FROM approvals WHERE run_id = ? AND key = ? "
        "ORDER BY round DESC LIMIT 1",
        (run_id, key),
    )
    workflow, requested_by = run.rows[0]
    if res.rows and res.rows[0][1] != "changes_requested":
        return Opened("duplicate_key", res.rows[0][1])
    round_ = res.rows[0][0] + 1 if res.rows else 1
    # read only here: the parse shared by every request with the same policy text
    rules = None if policy_json is None else _parse_policy(policy_json)
    principals: list[str] = []
    escalate_at = remind_at = None
    if rules is not None:
        principals = policy.inbox_principals(rules, requested_by)
        problem = _nobody_left(rules, principals, requested_by)
        if problem:
            return Opened("policy", problem)
        if rules.get("escalate_after") is not None:
            escalate_at = now + rules["escalate_after"]
        if rules.get("remind_every"):
            remind_at = now + rules["remind_every"]
    digest = policy.digest(summary, proposed_json, round_)
    yield Query(
        "INSERT INTO approvals (run_id, key, round, seq, workflow, status, summary, proposed, "
        "requested_at, deadline, policy, digest, escalate_at, remind_at) "
        "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run_id,
            key,
            round_,
            seq,
            workflow,
            summary,
            proposed_json,
            now,
            deadline,
            None if policy_json is None else stored_policy(policy_json),
            stored_digest(digest),
            escalate_at,
            remind_at,
        ),
        wait=False,
    )
    rows = [] if rules is None else policy.inbox_rows(rules, requested_by)
    yield from add_to_inbox(rows, now, run_id, key, round_, workflow, deadline)
    data: dict[str, Any] = {
        "key": key,
        "round": round_,
        "summary": summary,
        "deadline": iso(deadline),
    }
    if rules is not None and rules.get("eligible") is not None:
        data.update(digest=digest, approvers=rules["approvers"], quorum=rules["quorum"])
    if rules is not None and rules.get("stage"):
        data["stage"] = rules["stage"].get("name")
    yield history(run_id, now, "approval_requested", None, data)
    yield from sql_outbox.enqueue(
        run_id, outbox.APPROVAL_REQUESTED, now, data, workflow=workflow, key=key,
        approvers=principals, requested_by=requested_by, proposed_json=proposed_json,
    )  # fmt: skip
    return Opened(wake_at=earliest(deadline, escalate_at, remind_at))


def _nobody_left(
    rules: dict[str, Any], principals: list[str], requested_by: str | None
) -> str | None:
    eligible = rules.get("eligible")
    if eligible is None:
        return None
    people = [p for p in principals if not p.startswith(policy.ROLE)]
    if len(people) >= rules["quorum"]:
        return None
    return (
        f"only {', '.join(eligible)} may decide and {requested_by} requested this run; "
        f"separation of duties leaves {len(people)} of the {rules['quorum']} approvers "
        "needed: name more approvers, or pass allow_self_approval=True"
    )


def add_to_inbox(
    principals: Sequence[str],
    requested_at: float,
    run_id: str,
    key: str,
    round_: int,
    wf: str,
    deadline: float | None,
) -> Op[None]:
    """One inbox row per principal; `due` is the deadline (`NO_DEADLINE` when none)."""
    due = NO_DEADLINE if deadline is None else deadline
    for principal in principals:
        yield Query(
            "INSERT INTO approval_inbox (principal, requested_at, run_id, key, round, workflow, "
            "due) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (principal, requested_at, run_id, key, round_, wf, due),
            wait=False,
        )


# an inbox row's `due` when the approval has no deadline: after every real one (a float,
# not NULL, as SQLite sorts NULL first and PostgreSQL last); see migration 0011
NO_DEADLINE = 1e300


def earliest(*times: float | None) -> float | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def _latest_round(run_id: str, key: str) -> Op[Round | None]:
    res = yield Query(
        f"SELECT {ROUND_COLUMNS}, requested_at, workflow FROM approvals "
        "WHERE run_id = ? AND key = ? ORDER BY round DESC LIMIT 1",
        (run_id, key),
    )
    return Round(*res.rows[0]) if res.rows else None


VOTES = (
    "SELECT voter, vote, reason, at, value FROM approval_votes "
    "WHERE run_id = ? AND key = ? AND round = ? ORDER BY at, voter"
)


def votes_of(run_id: str, key: str, round_: int) -> Op[list[models.Vote]]:
    res = yield Query(VOTES, (run_id, key, round_))
    return [_vote(r) for r in res.rows]


def _vote(row: Sequence[Any]) -> models.Vote:
    return models.Vote(
        by=row[0],
        status=models.DecisionStatus(row[1]),
        reason=row[2],
        at=models.from_timestamp(row[3]),
        value=None if row[4] is None else json.loads(row[4]),
    )


def _decision(
    key: str, r: Round, votes: Sequence[models.Vote], status: str | None = None
) -> models.Decision:
    current = status or r.status
    current = current if current != "cancelled" else "expired"
    return models.Decision(
        key=key,
        status=models.DECISION_STATUS_OF.get(current) or models.DecisionStatus(current),
        value=serialization.loads(r.value),
        original=serialization.loads(r.proposed),
        by=r.decided_by,
        reason=r.reason,
        at=models.from_timestamp(r.decided_at),
        round=r.round,
        votes=tuple(votes),
        timed_out=bool(r.timed_out),
    )


def decide(
    *,
    run_id: str,
    key: str,
    status: models.DecisionStatus,
    value_json: str | None,
    by: str | None,
    reason: str | None,
    now: float,
    claim_for: str | None,
    lease_until: float,
    digest: str | None = None,
) -> Op[DecideOutcome]:
    """Record one person's decision on the latest round of `key`, and wake the run once
    the round is decided. Refusals change nothing and come back as the outcome."""
    # three reads, one round trip: the run's row (locked first), its audit chain's head
    # and the latest round, answered together
    res = yield Query(
        "SELECT status, wait_kind, wait_seq, requested_by FROM runs WHERE id = ?{for_update}",
        (run_id,),
        wait=False,
        early=True,
    )
    last = yield sql_audit.head(run_id)
    r = yield from _latest_round(run_id, key)
    if not res.rows:
        return DecideOutcome("run_not_found")
    run_status, wait_kind, wait_seq, requested_by = res.rows[0]
    if r is None:
        keys = yield Query(
            "SELECT DISTINCT key FROM approvals WHERE run_id = ? ORDER BY key", (run_id,)
        )
        return DecideOutcome("approval_not_found", pending_keys=tuple(x[0] for x in keys.rows))
    if r.status != "pending":
        # Who may decide is checked before anything is told about the decision on record.
        who = policy.check_vote(r.rules, status=status.value, by=by, requested_by=requested_by)
        if who is not None and who[0] in ("not_allowed", "self_approval"):
            return DecideOutcome(who[0], detail=who[1])
        existing = _decision(key, r, (yield from votes_of(run_id, key, r.round)))
        return DecideOutcome(_settled(r, status, value_json), existing)
    if run_status in FINISHED:
        return DecideOutcome("closed")
    if r.deadline is not None and now >= r.deadline:
        timed_out = yield from time_out(run_id, key, r, now)
        claim = yield from _wake_if_parked(
            run_id, r.seq, wait_kind, wait_seq, now, claim_for, lease_until
        )
        return DecideOutcome("expired", timed_out, claim)
    if digest is not None and digest != (shown := digest_text(r.digest)):
        return DecideOutcome("stale_digest", detail=shown)
    edited = None if value_json is None else json.loads(value_json)
    refused = policy.check_vote(
        r.rules, status=status.value, by=by, requested_by=requested_by, value=edited
    )
    if refused is not None:
        return DecideOutcome(refused[0], detail=refused[1])
    # A round that one vote settles has no earlier votes while it is pending.
    votes = (yield from votes_of(run_id, key, r.round)) if _many_votes(r) else []
    earlier = [v for v in votes if v.by == by]
    if by is not None and earlier:
        return DecideOutcome("duplicate_vote", detail=earlier[0])
    vote = models.Vote(
        by=by or "", status=status, reason=reason, at=models.from_timestamp(now), value=edited
    )
    if by is not None:
        votes.append(vote)
        yield Query(
            "INSERT INTO approval_votes (run_id, key, round, voter, vote, value, reason, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, key, r.round, by, status.value, value_json, reason, now),
            wait=False,
        )
    outcome = policy.tally(r.rules, [(v.by, v.status.value) for v in votes] or [("", status)])
    if outcome is None:
        return (yield from _record_vote(run_id, key, r, votes, vote, now))
    final = dict(status=outcome, by=by, reason=reason, at=now)
    decision = yield from _close_round(run_id, key, r, votes, value_json, final, last)
    claim = yield from _wake_if_parked(
        run_id, r.seq, wait_kind, wait_seq, now, claim_for, lease_until
    )
    return DecideOutcome(
        "decided", decision, claim, workflow=r.workflow, requested_at=r.requested_at
    )


def _many_votes(r: Round) -> bool:
    rules = r.rules or {}
    return int(rules.get("quorum", 1)) > 1 or int(rules.get("reject_quorum", 1)) > 1


def _has_inbox(r: Round) -> bool:
    """Whether the round has inbox rows (every round with a policy has: its approvers,
    or `policy.ANYONE` when it is open to anyone)."""
    return r.policy is not None


def _settled(r: Round, status: models.DecisionStatus, value_json: str | None) -> str:
    """How a decision on a round that is no longer pending is answered."""
    if r.status == "expired" or r.timed_out:
        return "expired"
    if r.status == "cancelled":
        return "closed"
    same = r.status == status.value and (
        status is not models.DecisionStatus.EDITED
        or (
            value_json is not None
            and r.value is not None
            and json.loads(r.value) == json.loads(value_json)
        )
    )
    return "duplicate" if same else "conflict"


def _record_vote(
    run_id: str, key: str, r: Round, votes: list[models.Vote], vote: models.Vote, now: float
) -> Op[DecideOutcome]:
    rules = r.rules or {}
    approvals = sum(1 for v in votes if v.status.value in ("approved", "edited"))
    data = {
        "key": key,
        "round": r.round,
        "status": vote.status.value,
        "reason": vote.reason,
        "approvals": approvals,
        "quorum": rules.get("quorum", 1),
    }
    yield from sql_audit.recorded(run_id, now, "approval_voted", vote.by, data)
    yield from sql_outbox.enqueue(
        run_id, outbox.APPROVAL_VOTED, now, {**data, "by": vote.by, "summary": r.summary},
        key=key, approvers=rules.get("approvers", ()),
    )  # fmt: skip
    yield Query(
        "DELETE FROM approval_inbox WHERE run_id = ? AND key = ? AND principal = ?",
        (run_id, key, vote.by),
        wait=False,
    )
    if rules.get("eligible") is None and vote.by is not None:  # open to anyone: not to them
        yield Query(
            "INSERT INTO approval_inbox (principal, requested_at, run_id, key, round, workflow, "
            "due) SELECT ?, requested_at, run_id, key, round, workflow, due FROM approval_inbox "
            "WHERE run_id = ? AND key = ? AND principal = ? ON CONFLICT DO NOTHING",
            (policy.NOT + vote.by, run_id, key, policy.ANYONE),
            wait=False,
        )
    decision = models.Decision(
        key=key,
        status=models.DecisionStatus.PENDING,
        value=None if r.proposed is None else json.loads(r.proposed),
        original=None if r.proposed is None else json.loads(r.proposed),
        by=vote.by,
        reason=vote.reason,
        at=models.from_timestamp(now),
        round=r.round,
        votes=tuple(votes),
    )
    return DecideOutcome("voted", decision)


def _close_round(
    run_id: str,
    key: str,
    r: Round,
    votes: Sequence[models.Vote],
    value_json: str | None,
    final: dict[str, Any],
    last: Result | None = None,
) -> Op[models.Decision]:
    """Close the round as `final` says (`last`: the run's audit head, when read ahead)."""
    status, now = final["status"], final["at"]
    timed_out = bool(final.get("timed_out"))
    new_value = value_json if status == "edited" else r.proposed
    if status == "expired":
        new_value = None
    yield Query(
        "UPDATE approvals SET status = ?, value = ?, decided_by = ?, reason = ?, "
        "decided_at = ?, timed_out = ?, escalate_at = NULL, remind_at = NULL "
        "WHERE run_id = ? AND key = ? AND round = ? AND status = 'pending'",
        (
            status,
            new_value,
            final["by"],
            final["reason"],
            now,
            int(timed_out),
            run_id,
            key,
            r.round,
        ),
        wait=False,
    )
    if _has_inbox(r):
        yield Query(
            "DELETE FROM approval_inbox WHERE run_id = ? AND key = ?", (run_id, key), wait=False
        )
    closed = Round(
        r.round, r.seq, status, r.summary, r.proposed, new_value, final["by"], final["reason"],
        now, r.deadline, r.policy, r.digest, int(timed_out),
    )  # fmt: skip
    decision = _decision(key, closed, votes)
    answer = decision.to_json()
    yield resolve_entry(run_id, r.seq, dump_json(answer), now)
    if status == "expired":
        yield from sql_audit.recorded(
            run_id, now, "approval_expired", None, {"key": key, "round": r.round}, last
        )
    elif timed_out:
        data = {"key": key, "round": r.round, "outcome": status, "by": policy.TIMEOUT_ACTOR}
        yield from sql_audit.recorded(run_id, now, "approval_timed_out", None, data, last)
    else:
        data = {"key": key, "round": r.round, "status": status, "reason": final["reason"]}
        if status == "edited":
            data["value"] = json.loads(new_value) if new_value else None
            data["original"] = json.loads(r.proposed) if r.proposed else None
        if len(votes) > 1:
            data["votes"] = [v.to_json() for v in votes]
        yield from sql_audit.recorded(run_id, now, "approval_decided", final["by"], data, last)
    event = outbox.APPROVAL_TIMED_OUT if timed_out else outbox.APPROVAL_DECIDED
    yield from sql_outbox.enqueue(
        run_id, outbox.APPROVAL_EXPIRED if status == "expired" else event, now,
        {"summary": r.summary, "decision": answer}, key=key,
        approvers=(r.rules or {}).get("approvers", ()),
    )  # fmt: skip
    return decision


def time_out(run_id: str, key: str, r: Round, now: float) -> Op[models.Decision]:
    """The deadline passed: close the round as its `on_timeout` says (default expire)."""
    on_timeout = (r.rules or {}).get("on_timeout", "expire")
    votes = yield from votes_of(run_id, key, r.round)
    if on_timeout == "expire":
        final: dict[str, Any] = dict(status="expired", by=None, reason=None, at=now, timed_out=True)
    else:
        status = "approved" if on_timeout == "approve" else "rejected"
        final = dict(
            status=status,
            by=policy.TIMEOUT_ACTOR,
            reason="no decision before the deadline",
            at=now,
            timed_out=True,
        )
    return (yield from _close_round(run_id, key, r, votes, None, final))


def _wake_if_parked(
    run_id: str,
    seq: int,
    wait_kind: str | None,
    wait_seq: int | None,
    now: float,
    claim_for: str | None,
    lease_until: float,
) -> Op[Claim | None]:
    if wait_kind != GROUP and (wait_kind is None or wait_seq != seq):
        return None  # not parked on this approval: its next execution finds the answer
    return (yield from wake(run_id, now, claim_for, lease_until, last=True))


GROUP = "group"  # runs.wait_kind of a run parked on several waits (`sql_waits.park`)


def withdraw(run_id: str, seq: int, now: float) -> Op[None]:
    """Close the pending approval opened at journal position `seq`: the workflow no
    longer waits for it (it took another answer first, or ended)."""
    res = yield Query(
        "SELECT key, round FROM approvals WHERE run_id = ? AND seq = ? AND status = 'pending'",
        (run_id, seq),
    )
    for key, round_ in res.rows:
        yield Query(
            "UPDATE approvals SET status = 'cancelled', decided_at = ?, escalate_at = NULL, "
            "remind_at = NULL WHERE run_id = ? AND key = ? AND round = ?",
            (now, run_id, key, round_),
            wait=False,
        )
        yield Query(
            "DELETE FROM approval_inbox WHERE run_id = ? AND key = ?", (run_id, key), wait=False
        )
        yield from sql_audit.recorded(
            run_id, now, "approval_withdrawn", None, {"key": key, "round": round_}
        )
