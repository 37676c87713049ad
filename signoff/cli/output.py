"""What the CLI prints: tables, field lists, timelines and JSON, from the domain records.

Columns name record attributes, so a table is derived from the record it shows; user text
(summaries, reasons) is printed as `Text`, never read as rich markup.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from signoff import models

DIGEST_SHOWN = 12  # characters of an approval's digest in tables; --digest takes a prefix
ID_SHOWN = 12  # characters of a run id in the inbox table; commands take any unique prefix

RUN_COLUMNS = {"id": "id", "workflow": "workflow", "status": "status",
               "waiting for": "waiting_for", "requested by": "requested_by",
               "created": "created_at", "updated": "updated_at"}  # fmt: skip
APPROVAL_COLUMNS = {"key": "key", "round": "round", "stage": "stage", "status": "status",
                    "summary": "summary", "proposed": "proposed", "value": "value",
                    "by": "decided_by", "reason": "reason", "decided": "decided_at"}  # fmt: skip
TOKEN_COLUMNS = {"id": "id", "name": "name", "scopes": "scopes", "created": "created_at",
                 "revoked": "revoked_at"}  # fmt: skip
_NO_WRAP = ("run", "id", "time", "requested (UTC)", "deadline (UTC)", "created", "decided",
            "digest")  # fmt: skip


def console() -> Console:
    # A pipe has no width; 80 columns would fold ids and timestamps, so go wider there.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(file=sys.stdout, width=200 if wide else None, highlight=False)


def plain(value: Any) -> Any:
    """Records as JSON data: dataclasses as dicts, datetimes as ISO 8601, enums as values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def echo_json(value: Any) -> None:
    click.echo(json.dumps(plain(value), indent=2, ensure_ascii=False))


def time(at: datetime | float | None, precise: bool = False) -> str:
    if at is None:
        return ""
    if not isinstance(at, datetime):
        at = datetime.fromtimestamp(at, UTC)
    text = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f" if precise else "%Y-%m-%d %H:%M:%S")
    return (text[:-3] if precise else text) + "Z"


def compact(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(plain(value), ensure_ascii=False, separators=(", ", ": "))


def _cell(value: Any) -> str:
    return time(value) if isinstance(value, datetime) else compact(value)


Column = str | Callable[[Any], Any]


def table(title: str | None, columns: dict[str, Column], records: list[Any]) -> Table:
    """A table with a column per `header: attribute (or function of the record)`."""
    out = Table(title=title, title_justify="left")
    for name in columns:
        out.add_column(name, no_wrap=name in _NO_WRAP, overflow="fold")
    for record in records:
        cells = (col(record) if callable(col) else getattr(record, col) for col in columns.values())
        out.add_row(*(Text(_cell(value)) for value in cells))
    return out


def fields(pairs: list[tuple[str, str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(name, Text(value))
    return grid


# approvals -------------------------------------------------------------------------------


def inbox_columns(approvals: list[models.Approval]) -> dict[str, Column]:
    """The inbox's columns; `stage` only when some approval is a stage of a chain."""
    if any(a.stage for a in approvals):
        return PENDING_COLUMNS
    return {name: col for name, col in PENDING_COLUMNS.items() if name != "stage"}


def votes(approval: models.Approval) -> str:
    """Votes so far against the quorum, e.g. "1/2"."""
    return f"{len(approval.votes)}/{approval.quorum}"


def short_digest(approval: models.Approval) -> str:
    return (approval.digest or "")[:DIGEST_SHOWN]


def short_id(run_id: str) -> str:
    """A run id as the inbox shows it: a long (generated) id by its first 12 characters,
    which name the run (any unique prefix of 6 or more does); a short one whole."""
    return run_id if len(run_id) <= 16 else run_id[:ID_SHOWN]


def minute(at: datetime | None) -> str:
    """To the minute, in UTC: enough for when an approval was asked and is due."""
    return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


PENDING_COLUMNS: dict[str, Column] = {
    "run": lambda a: short_id(a.run_id),
    "workflow": "workflow",
    "key": "key",
    "round": "round",
    "stage": "stage",
    "summary": "summary",
    "proposed": "proposed",
    "approvers": lambda a: ", ".join(a.approvers) or "anyone",
    "votes": votes,
    "requested (UTC)": lambda a: minute(a.requested_at),
    "deadline (UTC)": lambda a: minute(a.deadline),
    "digest": short_digest,
}


def decision_line(decision: models.Decision, run_id: str) -> str:
    who = f" by {decision.by}" if decision.by else ""
    line = f"{decision.status.value}: approval {decision.key!r} (round {decision.round}) of run "
    line += f"{run_id}{who}"
    if decision.status is models.DecisionStatus.PENDING:  # a vote towards a quorum
        line += f" ({len(decision.votes)} vote(s) so far)"
    return line


# runs ------------------------------------------------------------------------------------


def run_fields(run: models.Run) -> Table:
    pairs = [("id", run.id), ("workflow", run.workflow), ("status", run.status.value)]
    if run.waiting_for:
        pairs.append(("waiting for", run.waiting_for))
    if run.wake_at:
        pairs.append(("wakes at", time(run.wake_at)))
    pairs += [
        ("requested by", run.requested_by or ""),
        ("created", time(run.created_at)),
        ("updated", time(run.updated_at)),
        ("args", compact(run.args)),
        ("kwargs", compact(run.kwargs)),
    ]
    if run.status is models.RunStatus.COMPLETED:
        pairs.append(("result", compact(run.result) or "null"))
    if run.status is models.RunStatus.BLOCKED and run.error:
        pairs.append(("blocked", blocked_reason(run.error)))
    elif run.error:
        pairs.append(("error", f"{run.error.get('type')}: {run.error.get('message')}"))
    return fields(pairs)


def blocked_reason(error: dict[str, Any]) -> str:
    """Where a blocked run's replay left its journal, as `signoff check` says it."""
    return (
        f"at position {error.get('seq')}: the journal recorded {error.get('expected')}, "
        f"the code now calls {error.get('found')}; it resumes when code that replays it "
        "is deployed, or with `signoff runs retry`"
    )


def details(event: models.HistoryEntry) -> str:
    parts = []
    for name, value in event.data.items():
        if value is None:
            continue
        if name in ("deadline", "until") and isinstance(value, int | float):
            value = time(value)
        elif name == "error" and isinstance(value, dict):
            value = f"{value.get('type')}: {value.get('message')}"
        parts.append(f"{name}={compact(value)}")
    return " ".join(parts)


TIMELINE_COLUMNS: dict[str, Column] = {
    "time": lambda e: time(e.at, precise=True),
    "event": "type",
    "actor": lambda e: e.actor or "",
    "details": details,
}
