"""The journal of a run and the replay cursor over it. Pure data, no I/O.

A run's journal is the ordered list of what its workflow function did: each step with its
result or error, each wait (approval, signal, sleep) with its answer once it arrived, and
each `ctx.now()` reading. Replay walks the journal with a `ReplayCursor`: every call the
workflow makes takes the next position and must match the recorded kind and name there;
a recorded result is returned instead of doing the work again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from signoff import errors, models, serialization


class EntryKind(enum.StrEnum):
    STEP = "step"
    APPROVAL = "approval"
    SIGNAL = "signal"
    SLEEP = "sleep"
    NOW = "now"
    EVENT = "event"
    CHOICE = "choice"  # which of several waits `ctx.any_of` took
    PATCH = "patch"  # a change in workflow code this run takes (`ctx.patched`)


class EntryStatus(enum.StrEnum):
    DONE = "done"  # result recorded
    FAILED = "failed"  # step failed after its retries; error recorded
    OPEN = "open"  # a wait whose answer has not arrived


# value -> member, for rows read back (a dict lookup; calling the enum costs three calls)
KIND_OF: dict[str, EntryKind] = {k.value: k for k in EntryKind}
STATUS_OF: dict[str, EntryStatus] = {s.value: s for s in EntryStatus}


@models.quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class JournalEntry:
    """One call of a run. `seq` orders entries as they were recorded; `path` says where
    the call sits in the workflow: `"3"` is the fourth call of the workflow function,
    `"0/1"` the second call of the first task it started (`asyncio.gather`, `ctx.any_of`).
    Rows written before paths existed have none: their path is their `seq`."""

    seq: int
    kind: EntryKind
    name: str
    status: EntryStatus
    result: str | None = None  # JSON text
    error: str | None = None  # JSON text: {"type", "message", "traceback"}
    path: str | None = None

    @property
    def where(self) -> str:
        return self.path if self.path is not None else str(self.seq)


class ReplayCursor:
    """Matches calls to recorded entries by path, and numbers new entries.

    A call's path is fixed by the code alone (the task that makes it and how many calls
    that task made before), so concurrent tasks replay against their own records whatever
    order their calls were first recorded in. New entries take the next `seq`.
    """

    __slots__ = ("_by_path", "_next_seq", "_seen", "run_id")

    def __init__(self, run_id: str, entries: list[JournalEntry]) -> None:
        self.run_id = run_id
        self._by_path = {e.where: e for e in entries}
        self._next_seq = max((e.seq for e in entries), default=-1) + 1
        self._seen: set[str] = set()

    @property
    def position(self) -> int:
        """How many calls the replay has made so far."""
        return len(self._seen)

    def advance(
        self, kind: EntryKind, name: str, path: str | None = None
    ) -> tuple[int, JournalEntry | None]:
        """Take the position `path` (default: the next call of a single task) for a call
        of `kind` named `name`.

        Returns its seq and the recorded entry there (None on first execution).
        Raises `NonDeterminismError` when the record holds a different call.
        """
        where = path if path is not None else str(len(self._seen))
        self._seen.add(where)
        entry = self._by_path.get(where)
        if entry is None:
            seq = self._next_seq
            self._next_seq += 1
            return seq, None
        if entry.kind != kind or entry.name != name:
            raise mismatch(
                self.run_id, entry.seq, f"{entry.kind} {entry.name!r}", f"{kind} {name!r}"
            )
        return entry.seq, entry

    def peek(self, path: str) -> JournalEntry | None:
        """The entry recorded at `path`, without taking the position."""
        return self._by_path.get(path)

    def remember(self, entry: JournalEntry) -> None:
        """Add an entry written during this execution (so a later check sees it)."""
        self._by_path[entry.where] = entry

    def skip(self, prefix: str) -> None:
        """Count every entry under `prefix` as replayed (a task that will not run again)."""
        self._seen.update(w for w in self._by_path if w.startswith(prefix))

    def unreplayed(self) -> JournalEntry | None:
        """The first recorded entry the workflow did not reach, if any."""
        later = [e for where, e in self._by_path.items() if where not in self._seen]
        return min(later, key=lambda e: e.seq) if later else None


def mismatch(run_id: str, seq: int, expected: str, found: str) -> errors.NonDeterminismError:
    return errors.NonDeterminismError(
        f"run {run_id} replayed differently at position {seq}: the journal recorded "
        f"{expected} but the workflow now calls {found}. Workflow code must make the same "
        "calls in the same order on replay; if the code changed on purpose, keep the old "
        "path for runs started before the change, or cancel and restart those runs.",
        run_id=run_id,
        seq=seq,
        expected=expected,
        found=found,
    )


def decode_error(text: str | None) -> dict[str, Any]:
    data = serialization.loads(text)
    return data if isinstance(data, dict) else {}
