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

from signoff import errors, serialization


class EntryKind(enum.StrEnum):
    STEP = "step"
    APPROVAL = "approval"
    SIGNAL = "signal"
    SLEEP = "sleep"
    NOW = "now"
    EVENT = "event"


class EntryStatus(enum.StrEnum):
    DONE = "done"  # result recorded
    FAILED = "failed"  # step failed after its retries; error recorded
    OPEN = "open"  # a wait whose answer has not arrived


@dataclass(frozen=True, kw_only=True, slots=True)
class JournalEntry:
    seq: int
    kind: EntryKind
    name: str
    status: EntryStatus
    result: str | None = None  # JSON text
    error: str | None = None  # JSON text: {"type", "message", "traceback"}


class ReplayCursor:
    """Hands out journal positions in call order and checks them against the record."""

    __slots__ = ("_entries", "_next", "run_id")

    def __init__(self, run_id: str, entries: list[JournalEntry]) -> None:
        self.run_id = run_id
        self._entries = {e.seq: e for e in entries}
        self._next = 0

    @property
    def position(self) -> int:
        return self._next

    def advance(self, kind: EntryKind, name: str) -> tuple[int, JournalEntry | None]:
        """Take the next position for a call of `kind` named `name`.

        Returns the position and the recorded entry there (None on first execution).
        Raises `NonDeterminismError` when the record holds a different call.
        """
        seq = self._next
        self._next += 1
        entry = self._entries.get(seq)
        if entry is not None and (entry.kind != kind or entry.name != name):
            raise mismatch(self.run_id, seq, f"{entry.kind} {entry.name!r}", f"{kind} {name!r}")
        return seq, entry

    def remember(self, entry: JournalEntry) -> None:
        """Add an entry written during this execution (so a later check sees it)."""
        self._entries[entry.seq] = entry

    def unreplayed(self) -> JournalEntry | None:
        """The first recorded entry the workflow did not reach, if any."""
        later = [e for seq, e in self._entries.items() if seq >= self._next]
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
