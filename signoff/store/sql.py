"""The shape of a store operation, written once for every SQL backend.

An operation is a generator: it yields `Query` objects and is sent back a `Result` for
each; its return value is the operation's result. A backend drives the generator inside
one transaction (`drive` for DB-API connections; the PostgreSQL backend has an async
twin). SQL uses `?` placeholders and two markers that each dialect fills in:
`{for_update}` (row lock on PostgreSQL, nothing on SQLite, whose writes are serialized),
`{skip_locked}` (claim queries) and `{by_wake}` after `FROM runs` in the queries for due
timers (SQLite, without statistics, would walk every waiting run by the status index
rather than take the partial index of timers: 100 - 300 ms at a million waiting).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from signoff import models, serialization
from signoff.journal import KIND_OF, STATUS_OF, EntryKind, EntryStatus, JournalEntry

T = TypeVar("T")


class Query(NamedTuple):
    """One statement. `wait=False`: the operation does not look at its result, so a
    backend may send it on without waiting for the answer (PostgreSQL pipelines it; an
    error still fails the operation before it commits).

    With `wait=False`, two kinds of statement still have an answer that counts:

    - `early=True`: a read sent ahead; the `Result` the operation gets back is filled in
      by the time the answer to its next waiting statement comes (so two reads cost one
      round trip: yield the first early, the second waiting, then look at both);
    - `fence=RUN_ID`: the statement checks the run's fencing token (an `UPDATE ... WHERE
      fence = ?`): if it changes no row, the operation fails with `LeaseLost` before it
      commits, and nothing of it is kept.

    `last=True` (with `wait`): the operation's last statement, a read; once answered the
    operation only works out its value and yields nothing more, so PostgreSQL may answer
    it with the commit instead of a round trip of its own.

    SQLite answers every statement at once; only PostgreSQL's pipeline defers them."""

    sql: str
    params: Sequence[Any] = ()
    wait: bool = True
    early: bool = False
    fence: str | None = None
    last: bool = False


@dataclass(slots=True)
class Result:
    rows: list[tuple[Any, ...]]
    rowcount: int


Op = Generator[Query, Result, T]

RUN_COLUMNS = (
    "id, workflow, status, input, result, error, requested_by, created_at, updated_at, "
    "wait_kind, wait_name, wake_at, fence, deadline, version"
)
APPROVAL_COLUMNS = (
    "run_id, workflow, key, round, status, summary, proposed, value, decided_by, reason, "
    "requested_at, decided_at, deadline, policy, digest"
)
JOURNAL_COLUMNS = "seq, kind, name, status, result, error, path"


def drive(cursor: Any, op: Op[T], dialect: Dialect) -> T:
    """Run `op` on a synchronous DB-API cursor (sqlite3)."""
    rendered, execute, send = dialect.rendered, cursor.execute, op.send
    try:
        query = next(op)
        while True:
            sql = query.sql
            execute(rendered.get(sql) or dialect.render(sql), query.params)
            rows = cursor.fetchall() if cursor.description is not None else []
            if query.fence is not None and cursor.rowcount == 0:
                raise LeaseLost(query.fence)
            query = send(Result(rows, cursor.rowcount))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def answer(query: Query, rows: list[tuple[Any, ...]], rowcount: int) -> Result:
    """The result of `query` answered at once, its fence checked."""
    if query.fence is not None and rowcount == 0:
        raise LeaseLost(query.fence)
    return Result(rows, rowcount)


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    for_update: str
    skip_locked: str
    paramstyle: str  # "qmark" or "format"
    by_wake: str = ""  # the index of due timers, named where the planner would miss it
    epoch_now: str = ""  # an expression: the database's current time, epoch seconds
    # each statement's text as rendered, looked up once per statement executed (a plain
    # dict: hashing the dialect for an lru_cache key cost more than the lookup itself)
    rendered: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def render(self, sql: str) -> str:
        text = self.rendered.get(sql)
        if text is None:
            text = _render(self, sql)
            if len(self.rendered) < _RENDERED_MAX:  # statements built per call stay out
                self.rendered[sql] = text
        return text


_RENDERED_MAX = 4096


def _render(dialect: Dialect, sql: str) -> str:
    if "{" in sql:
        sql = sql.replace("{for_update}", dialect.for_update)
        sql = sql.replace("{skip_locked}", dialect.skip_locked)
        sql = sql.replace("{epoch_now}", dialect.epoch_now)
        sql = sql.replace("{by_wake}", dialect.by_wake)
    if dialect.paramstyle == "format":
        sql = sql.replace("%", "%%").replace("?", "%s")
    return sql


SQLITE = Dialect(
    "sqlite",
    for_update="",
    skip_locked="",
    paramstyle="qmark",
    epoch_now="(julianday('now') - 2440587.5) * 86400.0",
    by_wake=" INDEXED BY runs_wake",
)
POSTGRES = Dialect(
    "postgres",
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    paramstyle="format",
    epoch_now="EXTRACT(EPOCH FROM clock_timestamp())::float8",
)


def database_time() -> Op[float]:
    """The database's clock, in epoch seconds."""
    res = yield Query("SELECT {epoch_now}")
    return float(res.rows[0][0])


def row_to_run(row: Sequence[Any]) -> models.Run:
    inputs = serialization.loads(row[3])
    waiting_for = None
    if row[9] is not None:
        waiting_for = row[9] if row[9] == "sleep" else f"{row[9]}:{row[10]}"
        if row[9] == "group":  # several waits: "approval:legal, sleep:sleep"
            waiting_for = row[10]
    return models.Run(
        id=row[0],
        workflow=row[1],
        status=models.RUN_STATUS_OF.get(row[2]) or models.RunStatus(row[2]),
        args=inputs.get("args", []),
        kwargs=inputs.get("kwargs", {}),
        result=None if row[4] is None else json.loads(row[4]),
        error=None if row[5] is None else json.loads(row[5]),
        requested_by=row[6],
        created_at=models.from_timestamp(row[7]),  # type: ignore[arg-type]
        updated_at=models.from_timestamp(row[8]),  # type: ignore[arg-type]
        waiting_for=waiting_for,
        wake_at=models.from_timestamp(row[11]),
        deadline=models.from_timestamp(row[13]),
        version=row[14] if len(row) > 14 else None,
    )


def row_to_approval(row: Sequence[Any]) -> models.Approval:
    return models.Approval(
        run_id=row[0],
        workflow=row[1],
        key=row[2],
        round=row[3],
        status=models.ApprovalStatus(row[4]),
        summary=row[5],
        proposed=None if row[6] is None else json.loads(row[6]),
        value=None if row[7] is None else json.loads(row[7]),
        decided_by=row[8],
        reason=row[9],
        requested_at=models.from_timestamp(row[10]),  # type: ignore[arg-type]
        decided_at=models.from_timestamp(row[11]),
        deadline=models.from_timestamp(row[12]),
        **_policy_fields(policy_or_none(row[13]) if len(row) > 13 else None, row[10]),
        digest=digest_text(row[14]) if len(row) > 14 else None,
    )


def _policy_fields(policy_json: str | None, requested_at: float) -> dict[str, Any]:
    """The Approval fields an approval's stored policy fills in (see `signoff.policy`)."""
    if not policy_json:
        return {}
    policy = json.loads(policy_json)
    stage = policy.get("stage") or {}
    after = policy.get("escalate_after")
    return {
        "escalates_at": None if after is None else models.from_timestamp(requested_at + after),
        "escalate_to": list(policy.get("escalate_to") or []),
        "escalated": bool(policy.get("escalated")),
        "approvers": list(policy.get("approvers") or []),
        "quorum": policy.get("quorum", 1),
        "stage": stage.get("name"),
        "stages": list(stage.get("stages") or []),
        "question": bool(policy.get("question")),
        "edits": policy.get("edits", True) is not False,
        "schema": policy.get("schema"),
        "metadata": policy.get("metadata") or {},
    }


# How an approval's policy is stored (migration 0013). Most requests carry the same
# plain policy, 236 bytes of JSON repeated in every approval row; it is stored as
# "~1" and what differs from `POLICY_V1` (a JSON object, or nothing), when that reads back
# as exactly the same text, else as the JSON text itself (which starts with "{"). "~1"
# means `POLICY_V1` for ever: a later default is a new mark ("~2"), never a change here.
POLICY_V1: dict[str, Any] = {
    "approvers": [],
    "eligible": None,
    "quorum": 1,
    "reject_quorum": 1,
    "allow_self_approval": False,
    "on_timeout": "expire",
    "escalate_after": None,
    "escalate_to": [],
    "escalate_people": [],
    "escalated": False,
    "remind_every": None,
    "schema": None,
    "stage": None,
}
POLICY_V1_MARK = "~1"


@functools.lru_cache(maxsize=1024)
def stored_policy(text: str) -> str:
    """The stored form of an approval's policy JSON `text` (see `POLICY_V1`): what
    `policy_text` reads back as `text`, byte for byte."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if not isinstance(parsed, dict) or text[:1] != "{":
        return text
    base = POLICY_V1
    diff = {k: v for k, v in parsed.items() if k not in base or base[k] != v}
    stored = POLICY_V1_MARK + (dump_json(diff) if diff else "")
    return stored if policy_text(stored) == text else text


@functools.lru_cache(maxsize=1024)
def policy_text(stored: str) -> str:
    """An approval's policy JSON text from its stored form (`stored_policy`)."""
    if stored[:1] != "~":
        return stored
    if stored[:2] != POLICY_V1_MARK:
        raise ValueError(f"an approval policy stored as {stored[:8]!r}: unknown to this signoff")
    rest = stored[2:]
    return dump_json({**POLICY_V1, **json.loads(rest)} if rest else POLICY_V1)


def stored_digest(digest: str) -> bytes:
    """How an approval's digest (`policy.digest`, 64 hex digits) is stored: its 32 bytes."""
    return bytes.fromhex(digest)


def digest_text(stored: bytes | str | None) -> str | None:
    """An approval's digest as shown (64 hex digits) from its stored form: its 32 bytes
    (migration 0013), or the hex text of a row written before it on SQLite."""
    if stored is None or isinstance(stored, str):
        return stored
    return bytes(stored).hex()


def policy_or_none(stored: str | None) -> str | None:
    """`policy_text` of a stored policy read from a row, which may be NULL (none)."""
    return None if stored is None else policy_text(stored)


def row_to_entry(row: Sequence[Any]) -> JournalEntry:
    return JournalEntry(
        seq=row[0],
        kind=KIND_OF.get(row[1]) or EntryKind(row[1]),
        name=row[2],
        status=STATUS_OF.get(row[3]) or EntryStatus(row[3]),
        result=row[4],
        error=row[5],
        path=row[6],
    )


dump_json = serialization.compact_encoder()


def capped(expr: str) -> str:
    """SQL for a run's next wake-up: `expr` (a timer), or the run's own `deadline` if that
    comes first (or there is no timer). Only in statements on the `runs` table."""
    return (
        f"CASE WHEN deadline IS NOT NULL AND deadline < COALESCE({expr}, deadline + 1) "
        f"THEN deadline ELSE {expr} END"
    )


WAKE = capped("CAST(? AS DOUBLE PRECISION)")  # takes its parameter twice


def iso(ts: float | None) -> str | None:
    """A time in history data: ISO 8601 in UTC, like every time the API shows."""
    at = models.from_timestamp(ts)
    return None if at is None else at.isoformat()


def history(
    run_id: str, at: float, type_: str, actor: str | None, data: dict[str, Any] | str
) -> Query:
    """Append to a run's history (`data`: a dict, or its JSON text when the caller has it)."""
    return Query(
        "INSERT INTO history (run_id, at, type, actor, data) VALUES (?, ?, ?, ?, ?)",
        (run_id, at, type_, actor, data if isinstance(data, str) else dump_json(data)),
        wait=False,
    )


def resolve_entry(run_id: str, seq: int, result: str | None, now: float) -> Query:
    """Record the answer of an open wait in the journal (no-op if it is no longer open)."""
    return Query(
        "UPDATE journal SET status = 'done', result = ?, finished_at = ? "
        "WHERE run_id = ? AND seq = ? AND status = 'open'",
        (result, now, run_id, seq),
        wait=False,
    )


def insert_entry(
    run_id: str, entry: JournalEntry, now: float, wake_at: float | None = None, attempts: int = 1
) -> Query:
    finished = None if entry.status is EntryStatus.OPEN else now
    return Query(
        "INSERT INTO journal (run_id, seq, kind, name, status, result, error, attempts, "
        "wake_at, started_at, finished_at, path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run_id,
            entry.seq,
            entry.kind.value,
            entry.name,
            entry.status.value,
            entry.result,
            entry.error,
            attempts,
            wake_at,
            now,
            finished,
            entry.path,
        ),
        wait=False,
    )


@models.quick_init
@dataclass(frozen=True, slots=True)
class Claim:
    """A run handed to one worker: its record, its fencing token, and its journal."""

    run: models.Run
    fence: int
    journal: list[JournalEntry]


class LeaseLost(Exception):
    """The run is no longer held under this fencing token (lease expired, cancelled)."""


def load_claim(
    run_id: str, owner: str, lease_until: float, now: float, *, last: bool = False
) -> Op[Claim | None]:
    """Take the run for `owner`: bump its fence, set its lease, return it with its journal.
    `last`: the caller yields nothing after (the journal's read is then `Query.last`)."""
    claims = yield from load_claims([run_id], owner, lease_until, now, last=last)
    return claims[0] if claims else None


def load_claims(
    run_ids: list[str], owner: str, lease_until: float, now: float, *, last: bool = False
) -> Op[list[Claim]]:
    """`load_claim` for several runs at once: two statements, whatever their number."""
    if not run_ids:
        return []
    marks = ", ".join("?" for _ in run_ids)
    res = yield Query(  # answered with the journals': one round trip
        "UPDATE runs SET status = 'running', lease_owner = ?, lease_expires = ?, "
        "fence = fence + 1, updated_at = ?, wait_kind = NULL, wait_name = NULL, "
        f"wait_seq = NULL, wake_at = NULL WHERE id IN ({marks}) RETURNING {RUN_COLUMNS}",
        (owner, lease_until, now, *run_ids),
        wait=False,
        early=True,
    )
    entries = yield from journals(run_ids, last=last)
    return [Claim(row_to_run(row), row[12], entries[row[0]]) for row in res.rows]


def journals(run_ids: list[str], *, last: bool = False) -> Op[dict[str, list[JournalEntry]]]:
    """The journals of several runs, in one statement (the deploy preflight reads them).
    `last`: the caller yields nothing after (see `Query.last`)."""
    found: dict[str, list[JournalEntry]] = {run_id: [] for run_id in run_ids}
    if not run_ids:
        return found
    marks = ", ".join("?" for _ in run_ids)
    res = yield Query(
        f"SELECT run_id, {JOURNAL_COLUMNS} FROM journal WHERE run_id IN ({marks}) "
        "ORDER BY run_id, seq",
        tuple(run_ids),
        last=last,
    )
    for row in res.rows:
        found[row[0]].append(row_to_entry(row[1:]))
    return found


def wake(
    run_id: str, now: float, claim_for: str | None, lease_until: float, *, last: bool = False
) -> Op[Claim | None]:
    """Make a waiting run runnable; with `claim_for`, hand it straight to that worker.
    `last`: the caller yields nothing after (see `Query.last`)."""
    if claim_for is not None:
        return (yield from load_claim(run_id, claim_for, lease_until, now, last=last))
    yield Query(
        "UPDATE runs SET status = 'pending', updated_at = ?, wait_kind = NULL, "
        "wait_name = NULL, wait_seq = NULL, wake_at = NULL, lease_owner = NULL, "
        "lease_expires = NULL WHERE id = ?",
        (now, run_id),
        wait=False,
    )
    return None
