"""Logs that say which run and step they come from, as text or JSON lines, without secrets.

While a worker executes a run, the runner sets the run's id and workflow (and, inside a
step, the step's name) in context variables; `RunContext`, a `logging.Filter`, copies
them onto every record that passes a handler it is on, whoever logged it (signoff, your
workflow code, a library your step calls). `JsonFormatter` writes one JSON object per
line. `configure()` puts both on a root handler; `signoff worker --log-format json` and
`signoff serve --log-format json` call it.

```python
import signoff.logs

signoff.logs.configure(json=True, level="INFO")  # or on your own handler:
handler.addFilter(signoff.logs.RunContext())
handler.setFormatter(signoff.logs.JsonFormatter())
```

Secrets stay out: `JsonFormatter` and `RunContext` mask API tokens (`so_...`), bearer
credentials and approval-link tokens (`/links/...`) in the rendered message, and signoff
never logs request headers, link tokens or step arguments.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json as json_
import logging
import re
import sys
from collections.abc import Iterator
from typing import IO, Any

_run: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "signoff_log_run", default=None
)
_step: contextvars.ContextVar[str | None] = contextvars.ContextVar("signoff_log_step", default=None)

_SECRETS = (
    (re.compile(r"(/links/)[^\s?#\"']+"), r"\1[redacted]"),
    (re.compile(r"\bso_[A-Za-z0-9]+_[A-Za-z0-9_\-]{8,}"), "[redacted-token]"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1[redacted]"),
    (re.compile(r"(?i)([?&](?:token|link|sig|signature)=)[^&\s\"'#]+"), r"\1[redacted]"),
)
# What every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_ADDED = ("run_id", "workflow", "step")


def redact(text: str) -> str:
    """`text` with API tokens, bearer credentials and approval-link tokens masked."""
    if "/links/" not in text and "so_" not in text and "earer" not in text and "=" not in text:
        return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


@contextlib.contextmanager
def running(run_id: str, workflow: str) -> Iterator[None]:
    """Mark what is logged inside as the run's (the runner does, around an execution)."""
    token = _run.set((run_id, workflow))
    try:
        yield
    finally:
        _run.reset(token)


def enter_run(run_id: str, workflow: str) -> contextvars.Token[tuple[str, str] | None]:
    """`running` without a generator, for the runner's hot path; pass the token back to
    `exit_run`."""
    return _run.set((run_id, workflow))


def exit_run(token: contextvars.Token[tuple[str, str] | None]) -> None:
    _run.reset(token)


def enter_step(step: str) -> contextvars.Token[str | None]:
    """`stepping` without a generator, for the runner's hot path; pass the token back to
    `exit_step`."""
    return _step.set(step)


def exit_step(token: contextvars.Token[str | None]) -> None:
    _step.reset(token)


@contextlib.contextmanager
def stepping(step: str) -> Iterator[None]:
    """Mark what is logged inside as the step's (the runner does, around a step)."""
    token = _step.set(step)
    try:
        yield
    finally:
        _step.reset(token)


def current() -> dict[str, str]:
    """The run id, workflow and step of the code running now (empty outside a run)."""
    found: dict[str, str] = {}
    run = _run.get()
    if run is not None:
        found["run_id"], found["workflow"] = run
        step = _step.get()
        if step is not None:
            found["step"] = step
    return found


class RunContext(logging.Filter):
    """Sets `run_id`, `workflow` and `step` on each record logged while a run executes
    (a record's own `extra=` wins), and masks secrets in its message. Drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (UTC, ISO 8601), `level`, `logger`, `message`,
    then `run_id`, `workflow`, `step` when known, the record's `extra=` fields (`action`,
    ...), and `exception` with the traceback, if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        context = current()
        for name in _ADDED:
            value = getattr(record, name, None) or context.get(name)
            if value is not None:
                line[name] = value
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in line and not name.startswith("_"):
                line[name] = value if _plain(value) else redact(str(value))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        elif record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json_.dumps(line, default=str, ensure_ascii=False)


def _plain(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and value == redact(value))
    )


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(
    *, json: bool = False, level: int | str = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Log to `stream` (default stderr) from the root logger, as JSON lines (`json=True`)
    or text, with `RunContext` on the handler. Replaces the root logger's handlers;
    returns the new one. Text lines show the run and step too when there is one."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RunContext())
    handler.setFormatter(JsonFormatter() if json else _TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        run_id = getattr(record, "run_id", None)
        if run_id is None:
            return text
        step = getattr(record, "step", None)
        return f"{text} [run {run_id}{f' step {step}' if step else ''}]"
