"""Keeping link tokens and stream tickets out of logs.

An approval link's token decides as its approver, so it must not land where logs go. The
pages under `/links/` work without JavaScript (mail clients, strict CSP), so the token
travels in the path; every access-log record the server's loggers emit has that part
replaced by `[redacted]` (`RedactLinks`, installed on uvicorn's access logger by
`create_app`). A proxy in front of the server logs paths on its own: configure it to drop
or mask `/links/` paths too (see docs/http.md).

A stream ticket (tickets.py) travels in the query, `?ticket=`, because `EventSource`
cannot send headers; it is short-lived and read-only, and access logs show
`ticket=[redacted]` all the same.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access", "hypercorn.access")
_LINK = re.compile(r"(/links/)[^\s?#\"']+")
_TICKET = re.compile(r"([?&]ticket=)[^\s&#\"']+")


def redact(text: str) -> str:
    return _TICKET.sub(r"\1[redacted]", _LINK.sub(r"\1[redacted]", text))


class RedactLinks(logging.Filter):
    """Replaces link tokens and stream tickets in a record's message and arguments;
    drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and ("/links/" in record.msg or "ticket=" in record.msg):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def install() -> None:
    """Add the filter to the access loggers (once; safe to call again)."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactLinks) for f in logger.filters):
            logger.addFilter(RedactLinks())
