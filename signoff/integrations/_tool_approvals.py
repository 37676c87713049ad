"""What the toolkit integrations share (no toolkit imported here): approval keys from a
model's tool-call ids, and the refusal a model reads when a person did not approve."""

from __future__ import annotations

import hashlib

from signoff import models

_MAX_ID = 120  # longer tool-call ids are shortened (approval keys hold 200 characters)


def key(prefix: str, call_id: str, seen: dict[str, int]) -> str:
    """`prefix:<call id>`; a call id met before in the same agent run (some models number
    their calls afresh each turn) gets `#n`. `seen` counts them, in the run's order."""
    ident = call_id or "call"
    if len(ident) > _MAX_ID:
        ident = ident[:60] + "~" + hashlib.sha256(ident.encode()).hexdigest()[:16]
    base = f"{prefix}:{ident}"
    n = seen[base] = seen.get(base, 0) + 1
    return base if n == 1 else f"{base}#{n}"


def refusal(decision: models.Decision) -> str:
    """What the model reads when a person did not approve its tool call: who and why."""
    who = decision.by or "nobody"
    why = f": {decision.reason}" if decision.reason else ""
    if decision.status is models.DecisionStatus.EXPIRED:
        return f"No one approved this tool call in time (expired{why}); it was not run."
    if decision.status is models.DecisionStatus.CHANGES_REQUESTED:
        return f"{who} asked for changes to this tool call{why}. It was not run."
    return f"{who} rejected this tool call{why}. It was not run."


def metadata(
    tool_name: str, description: str | None, model_name: str, call_id: str
) -> dict[str, str]:
    """What the approval keeps beside the arguments, as data (`Approval.metadata`): the
    tool, what it does, the model that asked and its tool-call id (the empty ones left
    out)."""
    found = {
        "tool": tool_name,
        "description": (description or "").strip()[:500],
        "model": model_name,
        "tool_call_id": call_id,
    }
    return {k: v for k, v in found.items() if v}


def summary(tool_name: str, description: str | None, model_name: str, call_id: str) -> str:
    """The approval's summary: the tool, the first line of what it does, who asked."""
    what = (description or "").strip().split("\n", 1)[0]
    head = f"{tool_name}: {what}" if what else tool_name
    return f"{head} (asked by {model_name or 'the model'}, call {call_id})"
