"""What list endpoints hand out: pages, cursors checked before use, and large values cut.

A list shows many records at once, so a value over `MAX_INLINE` bytes of JSON (a 10 MB
proposal, a run's huge result) is replaced there by a marker
`{"$truncated": true, "bytes": N, "href": "/runs/.../approvals/..."}`; the `href` route
returns the record whole.
"""

from __future__ import annotations

import dataclasses
import json
import math
import urllib.parse
from typing import Any

from signoff import errors, models, policy
from signoff.server import problems

MAX_INLINE = 64 * 1024
# Cursor timestamps are epoch seconds; anything outside these years was not handed out.
_EARLIEST, _LATEST = 0.0, 32_503_680_000.0  # 1970 .. 3000


def bad_cursor() -> problems.Problem:
    return problems.Problem(400, "bad_cursor", "the cursor is not one this API handed out")


def check_time(at: float) -> float:
    """A cursor's timestamp, if it is one this API could have handed out."""
    if not math.isfinite(at) or not _EARLIEST <= at <= _LATEST:
        raise bad_cursor()
    return at


def check_inbox_cursor(cursor: str | None) -> None:
    """400 `bad_cursor` unless `cursor` is an inbox cursor with a sane timestamp."""
    if cursor is None:
        return
    try:
        at, _, _ = policy.decode_cursor(cursor)
    except (errors.InvalidArgument, ValueError, OverflowError):
        raise bad_cursor() from None
    check_time(at)


def q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def approval_href(run_id: str, key: str) -> str:
    return f"/runs/{q(run_id)}/approvals/{q(key)}"


def clip(value: Any, href: str) -> Any:
    """`value`, or the truncation marker when its JSON is over `MAX_INLINE` bytes."""
    if value is None or isinstance(value, bool | int | float):
        return value
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size <= MAX_INLINE:
        return value
    return {"$truncated": True, "bytes": size, "href": href}


def clip_approval(approval: models.Approval) -> models.Approval:
    href = approval_href(approval.run_id, approval.key)
    proposed, value = clip(approval.proposed, href), clip(approval.value, href)
    if proposed is approval.proposed and value is approval.value:
        return approval
    return dataclasses.replace(approval, proposed=proposed, value=value)


def clip_run(run: models.Run) -> models.Run:
    result = clip(run.result, f"/runs/{q(run.id)}")
    return run if result is run.result else dataclasses.replace(run, result=result)
