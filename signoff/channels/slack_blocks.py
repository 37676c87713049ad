"""What the Slack channel shows: Block Kit messages made from an approval's view.

A view is what a message was made from (summary, proposed value, digest, deadline, the
inbox link, whether it is a question) and the notes added since (votes, an escalation);
`state` is open (buttons) or closed (the outcome, no buttons). Every text from a
workflow is escaped for mrkdwn.
"""

from __future__ import annotations

import json
from typing import Any

OPEN = 1
CLOSED = 2
APPROVE = "signoff_approve"
REJECT = "signoff_reject"
ACTIONS = {APPROVE: "approve", REJECT: "reject"}
MAX_FACTS = 8  # Slack shows at most 10 fields in a section
MAX_TEXT = 2900  # a section's text is at most 3000 characters
_OUTCOMES = {
    "approved": ":white_check_mark: Approved",
    "edited": ":white_check_mark: Approved with changes",
    "rejected": ":x: Rejected",
    "changes_requested": ":leftwards_arrow_with_hook: Changes requested",
    "expired": ":hourglass: Expired",
}

_ANSWERS = {"edited": ":speech_balloon: Answered", "rejected": ":x: Declined"}


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: `&`, `<` and `>` only."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def facts(proposed: Any) -> list[dict[str, Any]]:
    """The key facts of a proposed value: a field per top-level entry of a mapping (the
    first few), else the value itself."""
    if proposed is None:
        return []
    if isinstance(proposed, dict) and proposed:
        items = list(proposed.items())
        fields = [
            {
                "type": "mrkdwn",
                "text": f"*{escape(_clip(str(k), 80))}*\n{escape(_clip(_shown(v), 200))}",
            }
            for k, v in items[:MAX_FACTS]
        ]
        if len(items) > MAX_FACTS:
            fields.append({"type": "mrkdwn", "text": f"_and {len(items) - MAX_FACTS} more_"})
        return [{"type": "section", "fields": fields}]
    text = f"*Proposed*\n{escape(_clip(_shown(proposed), 1000))}"
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def button_value(run_id: str, key: str, round_: int, digest: str | None) -> str:
    """What a button carries back: the approval, its round and the digest shown."""
    return json.dumps({"run": run_id, "key": key, "round": round_, "digest": digest})


def approval_blocks(
    view: dict[str, Any], state: int, outcome: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The message for one approval round as it stands."""
    summary = escape(_clip(str(view.get("summary") or view["key"]), MAX_TEXT))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{summary}*"}},
        *facts(view.get("proposed")),
    ]
    about = f"{escape(view['workflow'])} · run `{view['run_id']}` · {escape(view['key'])}"
    if view.get("round", 1) > 1:
        about += f" · round {view['round']}"
    if view.get("deadline") and state == OPEN:
        about += f" · decide by {escape(str(view['deadline']))}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": about}]})
    for note in view.get("notes", {}).values():
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if state == CLOSED:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": outcome_text(outcome or {}, view)},
            }
        )
    # A question (`ctx.ask`) is answered, never approved: no Approve / Reject buttons.
    question = bool(view.get("question"))
    elements = _buttons(view) if state == OPEN and not question else []
    if view.get("link"):
        label = "Answer in the inbox" if question and state == OPEN else "Open in the inbox"
        elements.append(
            {
                "type": "button",
                "action_id": "signoff_open",
                "text": {"type": "plain_text", "text": label},
                "url": view["link"],
                **({"style": "primary"} if question and state == OPEN else {}),
            }
        )
    elif question and state == OPEN:
        note = "_A question: answer it in the signoff inbox._"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if elements:
        blocks.append({"type": "actions", "block_id": "signoff", "elements": elements})
    return blocks


def _buttons(view: dict[str, Any]) -> list[dict[str, Any]]:
    value = button_value(view["run_id"], view["key"], view.get("round", 1), view.get("digest"))
    if len(value) > 2000:  # Slack's limit on a button's value: decide in the inbox
        return []
    return [
        {
            "type": "button",
            "action_id": APPROVE,
            "text": {"type": "plain_text", "text": "Approve"},
            "style": "primary",
            "value": value,
        },
        {
            "type": "button",
            "action_id": REJECT,
            "text": {"type": "plain_text", "text": "Reject"},
            "style": "danger",
            "value": value,
        },
    ]


def outcome_text(decision: dict[str, Any], view: dict[str, Any] | None = None) -> str:
    """ ":white_check_mark: Approved by alice: fine", from an event's decision (for a
    question: "Answered by alice", "Declined by bob")."""
    status = str(decision.get("status") or "decided")
    outcomes = _ANSWERS if (view or {}).get("question") else _OUTCOMES
    text = (
        outcomes.get(status)
        or _OUTCOMES.get(status)
        or escape(status.replace("_", " ").capitalize())
    )
    by = decision.get("by")
    if by and by != "timeout":
        text += f" by *{escape(str(by))}*"
    elif decision.get("timed_out") or by == "timeout":
        text += " (no decision before the deadline)"
    if decision.get("reason"):
        text += f": {escape(_clip(str(decision['reason']), 1000))}"
    return text


def run_blocks(event: str, data: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for a run event."""
    where = f"{escape(str(data.get('workflow')))} run `{data.get('run_id')}`"
    if event == "run.failed":
        error = data.get("error") or {}
        detail = escape(_clip(f"{error.get('type')}: {error.get('message')}", 1000))
        text = f":warning: {where} failed: {detail}"
    else:
        text = f":checkered_flag: {where} completed"
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
