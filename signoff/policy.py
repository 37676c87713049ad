"""Approval policies, without I/O: who may decide, quorum, timeouts, escalation, digests.

A policy is built when the workflow opens an approval (roles resolved through the
engine's directory at that moment) and stored with the request as JSON, so that any
process can check a decision against it, including one without the directory. The store
calls `check_vote` and `tally` inside the deciding transaction.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from signoff import durations, errors, schemas, serialization

TIMEOUT_ACTOR = "timeout policy"  # `by` of an outcome chosen by on_timeout; never a person
ON_TIMEOUT = ("expire", "reject", "approve")
ROLE = "role:"
# inbox rows of an approval open to anyone: ANYONE for everybody, and NOT + name for each
# person who may not (the requester, under separation of duties) or need not (has voted)
ANYONE = "*"
NOT = "!"


class DirectoryLike(Protocol):
    """Resolves a role to the people in it. Raise `KeyError` for a role it does not know."""

    def members(self, role: str) -> set[str]: ...


class Directory:
    """The default directory: a mapping from role name to its members.

    `Directory({"finance": ["bob", "carol"]})`; `approvers=["role:finance"]` then means
    bob or carol. Replace it with any object that has `members(role) -> set[str]`.
    """

    def __init__(self, roles: Mapping[str, Iterable[str]] | None = None) -> None:
        self._roles = {name: set(people) for name, people in (roles or {}).items()}

    def members(self, role: str) -> set[str]:
        return set(self._roles[role])

    def __repr__(self) -> str:
        return f"Directory({self._roles!r})"


@dataclass(frozen=True, kw_only=True, slots=True)
class Stage:
    """One stage of `ctx.approval_chain`: who decides it, and when it applies.

    `when(value)` (optional) gets the value so far (the proposal, or the previous stage's
    edit) and says whether this stage is needed, e.g. `when=lambda v: v["amount"] > 1000`.
    The other fields are those of `ctx.approval`.
    """

    name: str
    approvers: Sequence[str] | None = None
    quorum: int = 1
    when: Callable[[Any], bool] | None = None
    summary: str | None = None
    timeout: durations.Duration | None = None
    on_timeout: str = "expire"
    escalate_after: durations.Duration | None = None
    escalate_to: Sequence[str] | None = None
    remind_every: durations.Duration | None = None
    schema: Any = None
    allow_self_approval: bool = False


def resolve(
    names: Sequence[str], directory: DirectoryLike | None, what: str
) -> tuple[list[str], list[str]]:
    """(people, roles) named by `names`; roles are expanded through `directory`."""
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise errors.InvalidArgument(
            f"{what} must be a list of names and 'role:NAME' entries, not {names!r:.80}"
        )
    people: set[str] = set()
    roles: list[str] = []
    for name in names:
        serialization.to_jsonable(name, what)
        if not name.startswith(ROLE):
            people.add(name)
            continue
        role = name[len(ROLE) :]
        try:
            if directory is None:
                raise KeyError(role)
            members = directory.members(role)
        except KeyError:
            raise errors.InvalidArgument(
                f"{what}: role {role!r} is unknown to the engine's directory; add it, e.g. "
                f"Engine(..., directory=signoff.Directory({{{role!r}: [...]}}))"
            ) from None
        people.update(members)
        roles.append(name)
    return sorted(people), roles


def build(
    *,
    approvers: Sequence[str] | None,
    quorum: int,
    reject_quorum: int,
    allow_self_approval: bool,
    on_timeout: str,
    escalate_after: float | None,
    escalate_to: Sequence[str] | None,
    remind_every: float | None,
    schema: Any,
    stage: dict[str, Any] | None,
    directory: DirectoryLike | None,
    edits: bool = True,
    question: bool = False,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored policy of one approval request; refuses what cannot work.

    `edits=False`: a decision may not change the value (approve or reject only);
    `question=True`: the request asks for an answer (`ctx.ask`), given as an edit;
    `metadata`: JSON shown with the request."""
    for number, what in ((quorum, "quorum"), (reject_quorum, "reject_quorum")):
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise errors.InvalidArgument(f"{what} must be a whole number of at least 1")
    if on_timeout not in ON_TIMEOUT:
        raise errors.InvalidArgument(
            f"on_timeout must be one of {', '.join(ON_TIMEOUT)}, not {on_timeout!r:.40}"
        )
    if metadata is not None and not isinstance(metadata, dict):
        raise errors.InvalidArgument(f"metadata must be a dict, not {metadata!r:.60}")
    if (escalate_after is None) != (escalate_to is None):
        raise errors.InvalidArgument("escalate_after and escalate_to go together: give both")
    people: list[str] = []
    roles: list[str] = []
    if approvers is not None:
        people, roles = resolve(approvers, directory, "approvers")
        if not people:
            raise errors.InvalidArgument(
                f"approvers {list(approvers)!r} resolve to nobody: no one could decide"
            )
        if quorum > len(people):
            raise errors.InvalidArgument(
                f"quorum {quorum} is larger than the {len(people)} people who may decide "
                f"({', '.join(people)})"
            )
    escalate_people: list[str] = []
    escalate_roles: list[str] = []
    if escalate_to is not None:
        escalate_people, escalate_roles = resolve(escalate_to, directory, "escalate_to")
        if not escalate_people:
            raise errors.InvalidArgument(f"escalate_to {list(escalate_to)!r} resolves to nobody")
    return {
        "approvers": [*[p for p in approvers or () if not p.startswith(ROLE)], *roles],
        "eligible": people if approvers is not None else None,
        "quorum": quorum,
        "reject_quorum": reject_quorum,
        "allow_self_approval": bool(allow_self_approval),
        "on_timeout": on_timeout,
        "escalate_after": escalate_after,
        "escalate_to": [*[p for p in escalate_to or () if not p.startswith(ROLE)], *escalate_roles],
        "escalate_people": escalate_people,
        "escalated": False,
        "remind_every": remind_every,
        "schema": None if schema is None else schemas.to_json_schema(schema),
        "stage": stage,
        # only when not the default, so that every plain policy keeps its text
        **({} if edits else {"edits": False}),
        **({"question": True} if question else {}),
        **({"metadata": metadata} if metadata else {}),
    }


def digest(summary: str, proposed_json: str | None, round_: int) -> str:
    """sha256 of exactly what an approver is shown: summary, proposed value and round."""
    proposed = None if proposed_json is None else json.loads(proposed_json)
    text = _digest_text({"summary": summary, "proposed": proposed, "round": round_})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_digest_text = serialization.compact_encoder(sort_keys=True)


def inbox_principals(policy: dict[str, Any], requested_by: str | None) -> list[str]:
    """Who sees the request in their inbox: each eligible person (not the requester,
    under separation of duties) and each named role as `role:NAME`."""
    people = policy.get("eligible") or []
    if not policy.get("allow_self_approval"):
        people = [p for p in people if p != requested_by]
    roles = [a for a in policy.get("approvers") or [] if a.startswith(ROLE)]
    return [*people, *roles]


def inbox_rows(policy: dict[str, Any], requested_by: str | None) -> list[str]:
    """The inbox rows of a request: `inbox_principals`, or for an approval open to
    anyone, `ANYONE` and (under separation of duties) `NOT` + the requester."""
    if policy.get("eligible") is not None:
        return inbox_principals(policy, requested_by)
    rows = [ANYONE]
    if requested_by is not None and not policy.get("allow_self_approval"):
        rows.append(NOT + requested_by)
    return rows


def check_vote(
    policy: dict[str, Any] | None,
    *,
    status: str,
    by: str | None,
    requested_by: str | None,
    value: Any = None,
) -> tuple[str, Any] | None:
    """Why `by` may not cast this vote, as (problem, detail), or None when they may."""
    if policy is None:  # requested before policies existed: anyone decides
        return None
    eligible = policy.get("eligible")
    if eligible is not None and by not in eligible:
        return "not_allowed", list(eligible)
    if (
        by is not None
        and by == requested_by
        and not policy.get("allow_self_approval")
        and status != "changes_requested"
    ):
        return "self_approval", None
    if policy.get("quorum", 1) > 1 and by is None:
        return "anonymous_vote", None
    if policy.get("question") and status in ("approved", "changes_requested"):
        return "answer_required", None
    if status == "edited":
        if policy.get("edits") is False:
            return "edit_not_allowed", None
        if policy.get("quorum", 1) > 1:
            return "edit_under_quorum", None
        if policy.get("schema") is not None:
            problems = schemas.validate(value, policy["schema"])
            if problems:
                return "invalid_edit", problems
    return None


def tally(policy: dict[str, Any] | None, votes: Sequence[tuple[str, str]]) -> str | None:
    """The round's outcome from its votes [(by, status)], or None while it needs more."""
    if not votes:
        return None
    quorum = (policy or {}).get("quorum", 1)
    reject_quorum = (policy or {}).get("reject_quorum", 1)
    statuses = [status for _, status in votes]
    if "changes_requested" in statuses:
        return "changes_requested"
    approvals = sum(1 for s in statuses if s in ("approved", "edited"))
    rejections = statuses.count("rejected")
    if rejections >= reject_quorum:
        return "rejected"
    if approvals >= quorum:
        return "edited" if statuses[-1] == "edited" else "approved"
    eligible = (policy or {}).get("eligible")
    if eligible is not None:
        voted = {by for by, _ in votes}
        if approvals + len(set(eligible) - voted) < quorum:
            return "rejected"  # too few people left to reach the quorum
    return None


def _encode(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> Any:
    """The JSON inside a cursor; ValueError (or TypeError) when there is none."""
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def encode_cursor(requested_at: float, run_id: str, key: str, *, due: float | None = None) -> str:
    """An inbox cursor; with `due` (the last row's deadline key), one of the urgent order."""
    return _encode([requested_at, run_id, key] + ([] if due is None else [due]))


def encode_decided_cursor(at: float, run_id: str, key: str, round_: int) -> str:
    return _encode(["decided", at, run_id, key, round_])


def decode_decided_cursor(cursor: str) -> tuple[float, str, str, int]:
    """The (vote time, run id, key, round) of a "decided by" page's `next_cursor`."""
    try:
        tag, at, run_id, key, round_ = _decode(cursor)
        if tag != "decided" or not isinstance(at, int | float) or isinstance(at, bool):
            raise ValueError
        if not isinstance(run_id, str) or not isinstance(key, str):
            raise ValueError
        if not isinstance(round_, int) or isinstance(round_, bool):
            raise ValueError
        return float(at), run_id, key, round_
    except (ValueError, TypeError):
        raise errors.InvalidArgument(
            f"cursor {cursor!r:.60} is not one this list returned; pass a page's next_cursor"
        ) from None


def encode_run_cursor(created_at: float, run_id: str) -> str:
    return _encode([created_at, run_id])


def decode_run_cursor(cursor: str) -> tuple[float, str]:
    """The (created_at, run id) of a run list's `next_cursor`; `BadCursor` if it is not one."""
    try:
        at, run_id = _decode(cursor)
        if not isinstance(at, int | float) or not isinstance(run_id, str):
            raise ValueError
        if not math.isfinite(at) or not 0 <= at <= 32503680000:  # up to the year 3000
            raise ValueError
        return float(at), run_id
    except (ValueError, TypeError):
        raise errors.BadCursor(
            f"cursor {cursor!r:.60} is not one this list returned; pass a page's next_cursor"
        ) from None


def decode_cursor(cursor: str) -> tuple[float, str, str]:
    """The (requested_at, run id, key) of an inbox page's `next_cursor` (either order)."""
    return decode_inbox_cursor(cursor)[0]


def decode_inbox_cursor(cursor: str) -> tuple[tuple[float, str, str], float | None]:
    """((requested_at, run id, key), due): due is None for a cursor of the oldest-first
    order, the last row's deadline key for one of the urgent order."""
    try:
        at, run_id, key, *rest = _decode(cursor)
        if not isinstance(at, int | float) or not isinstance(run_id, str):
            raise ValueError
        if not isinstance(key, str) or len(rest) > 1:
            raise ValueError
        due = None
        if rest:
            if not isinstance(rest[0], int | float) or isinstance(rest[0], bool):
                raise ValueError
            due = float(rest[0])
        return (float(at), run_id, key), due
    except (ValueError, TypeError):
        raise errors.InvalidArgument(
            f"cursor {cursor!r:.60} is not one this inbox returned; pass a page's next_cursor"
        ) from None


def refusal(
    outcome: str, detail: Any, *, run_id: str, key: str, by: str | None
) -> errors.SignoffError | None:
    """The error for a decision the policy refused (see `DecideOutcome`), or None."""
    who = repr(by) if by is not None else "an anonymous decision"
    where = f"approval {key!r} of run {run_id}"
    if outcome == "not_allowed":
        allowed = list(detail or [])
        return errors.NotAllowedToDecide(
            f"{who} may not decide {where}; who may: {', '.join(allowed)}",
            run_id=run_id,
            key=key,
            allowed=allowed,
        )
    if outcome == "self_approval":
        return errors.SelfApproval(
            f"{who} requested run {run_id} and may not decide its {key!r} approval "
            "(separation of duties); another approver must, or the workflow passes "
            "allow_self_approval=True",
            run_id=run_id,
            key=key,
        )
    if outcome == "anonymous_vote":
        return errors.InvalidArgument(
            f"{where} needs several approvers (a quorum): say who decides with by=",
            run_id=run_id,
            key=key,
        )
    if outcome == "edit_under_quorum":
        return errors.InvalidArgument(
            f"{where} needs a quorum, so one person cannot change its value: approve, "
            "reject, or request changes so that the workflow asks again",
            run_id=run_id,
            key=key,
        )
    if outcome == "answer_required":
        return errors.AnswerRequired(
            f"{where} is a question: answer it (an answer is an edit: `engine.answer`, "
            '`signoff answer`, the action "answer"), or reject it to decline',
            run_id=run_id,
            key=key,
        )
    if outcome == "edit_not_allowed":
        return errors.EditNotAllowed(
            f"{where} may be approved or rejected but not edited: what would run could not "
            "take the edited value",
            run_id=run_id,
            key=key,
        )
    if outcome == "invalid_edit":
        problems = list(detail or [])
        return errors.InvalidEdit(
            f"the edited value of {where} does not fit its schema: {'; '.join(problems)}",
            run_id=run_id,
            key=key,
            errors=problems,
        )
    if outcome == "duplicate_vote":
        return errors.DuplicateVote(
            f"{who} already voted {detail.status} on {where}; each person votes once per "
            "round, and a quorum counts distinct people",
            run_id=run_id,
            key=key,
            decision=None,
        )
    if outcome == "stale_digest":
        return errors.StaleDigest(
            f"{where} has changed since it was shown (its digest is now {detail}); "
            "reload it and decide on what it shows now",
            run_id=run_id,
            key=key,
            current_digest=detail,
        )
    return None
