"""The audit chain: what was decided, by whom, kept so that any change shows.

Every decision, vote, edit, expiry, timeout, escalation, withdrawal and cancellation of a
run, and every token created or revoked, is appended to a chain in the same transaction
as the change itself: one chain per run (named by the run id) and one named "tokens".
Each entry carries the hash of the entry before it, so changing, removing or reordering
an entry breaks every hash after it. `verify` checks chains; `signoff audit verify` runs
it over the database and `signoff audit export` writes JSON lines that verify offline:

    for each chain, entries in seq order (1, 2, 3, ...):
        prev of the first is "0" * 64; prev of every other is the hash of the one before
        hash == sha256(prev + "|" + json([chain, seq, at, type, actor, data]))
    where json() is compact (separators "," and ":"), not ASCII-escaped, UTF-8 encoded,
    and `data` is the entry's data exactly as exported (a string of JSON).

Pure functions, no I/O: the store appends and reads entries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
TOKENS = "tokens"  # the chain of token creations and revocations
PURGED = "purged"  # one entry per purged run: its chain's length and last hash


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """One entry of an audit chain. `data` is JSON text, hashed as it is."""

    chain: str
    seq: int
    at: str  # ISO 8601, UTC
    type: str
    actor: str | None
    data: str
    prev: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "seq": self.seq,
            "at": self.at,
            "type": self.type,
            "actor": self.actor,
            "data": self.data,
            "prev": self.prev,
            "hash": self.hash,
        }


def entry_hash(
    prev: str, chain: str, seq: int, at: str, type_: str, actor: str | None, data: str
) -> str:
    payload = _compact([chain, seq, at, type_, actor, data])
    return hashlib.sha256(f"{prev}|{payload}".encode()).hexdigest()


_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # made once


def make(
    chain: str, seq: int, at: str, type_: str, actor: str | None, data: str, prev: str
) -> AuditEntry:
    """The entry that follows `prev` in `chain`."""
    return AuditEntry(
        chain=chain,
        seq=seq,
        at=at,
        type=type_,
        actor=actor,
        data=data,
        prev=prev,
        hash=entry_hash(prev, chain, seq, at, type_, actor, data),
    )


class Verifier:
    """Checks chains entry by entry (in chain, seq order), page after page."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.entries = 0
        self.chains = 0
        self._chain: str | None = None
        self._seq, self._prev = 1, GENESIS

    def feed(self, entries: Iterable[AuditEntry]) -> None:
        for e in entries:
            self.entries += 1
            if e.chain != self._chain:
                self._chain, self._seq, self._prev = e.chain, 1, GENESIS
                self.chains += 1
            where = f"chain {e.chain!r} entry {e.seq}"
            if e.seq != self._seq:
                self.problems.append(f"{where}: expected entry {self._seq} here (removed or moved)")
            if e.prev != self._prev:
                self.problems.append(f"{where}: does not follow the entry before it")
            if entry_hash(e.prev, e.chain, e.seq, e.at, e.type, e.actor, e.data) != e.hash:
                self.problems.append(f"{where}: its content does not match its hash (changed)")
            self._seq, self._prev = e.seq + 1, e.hash


def verify(entries: Iterable[AuditEntry]) -> list[str]:
    """What is wrong with these chains (entries in chain, seq order), one line each;
    an empty list when every chain is whole."""
    verifier = Verifier()
    verifier.feed(entries)
    return verifier.problems
