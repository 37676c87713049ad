"""The `signoff` command line: run a worker, inspect runs, decide approvals, start runs.

```
signoff worker app:engine                 # execute runs (SIGTERM/Ctrl-C drains, then exits 0)
signoff runs list --status waiting
signoff runs show RUN                     # fields, approvals, timeline
signoff approvals list
signoff approve RUN manager --by alice --reason "ok"
signoff start refund --input '["ord-1"]'
```
Every command goes through `Engine`; none touches SQL. The database comes from `--db`, or
`SIGNOFF_DATABASE_URL`, or `sqlite:///signoff.db`. Every option can also be set from a
`SIGNOFF_*` environment variable (shown by `--help`). Any `SignoffError` prints one line,
`error: <message>`, on stderr and exits with code 2; usage errors exit with 2 as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import importlib
import json
import logging
import os
import signal as signal_
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from signoff import durations, errors, models, serialization
from signoff.engine import Engine

T = TypeVar("T")
FC = TypeVar("FC", bound=Callable[..., Any])

DEFAULT_DB = "sqlite:///signoff.db"
ERROR_EXIT = 2


# plumbing ------------------------------------------------------------------------------


class CliError(click.ClickException):
    """A one-line error: `error: <message>` on stderr, exit code 2."""

    exit_code = ERROR_EXIT

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or "failed"


class _Group(click.Group):
    """The root group: turns library errors raised by any subcommand into `CliError`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.SignoffError as exc:
            raise CliError(_one_line(str(exc))) from None
        except TimeoutError as exc:
            raise CliError(_one_line(f"{exc}; is a worker running for it?")) from None


@dataclasses.dataclass
class Settings:
    db: str
    db_explicit: bool  # given by --db or SIGNOFF_DATABASE_URL, not the default

    def engine(self) -> Engine:
        return Engine(self.db)


def option(*decls: str, **kw: Any) -> Callable[[FC], FC]:
    """`click.option` that shows its environment variable in `--help`."""
    kw.setdefault("show_envvar", True)
    return click.option(*decls, **kw)


def _set_db(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        settings = ctx.find_object(Settings)
        if settings is not None:
            settings.db, settings.db_explicit = value, True


def db_option() -> Callable[[FC], FC]:
    """`--db` after the command name too (`signoff worker app:engine --db ...`)."""
    return click.option(
        "--db",
        metavar="URL",
        expose_value=False,
        is_eager=True,
        allow_from_autoenv=False,
        callback=_set_db,
        help="Database URL (the same as `signoff --db URL ...`).",
    )


def by_option(help_: str = "Who does this (recorded in the history).") -> Callable[[FC], FC]:
    return option("--by", envvar="SIGNOFF_BY", help=help_)


def json_option() -> Callable[[FC], FC]:
    return option(
        "--json",
        "as_json",
        is_flag=True,
        envvar="SIGNOFF_JSON",
        help="Print JSON instead of a table.",
    )


def _settings() -> Settings:
    return click.get_current_context().find_object(Settings) or Settings(DEFAULT_DB, False)


def _with_engine(fn: Callable[[Engine], Awaitable[T]], engine: Engine | None = None) -> T:
    """Run `fn(engine)` on a fresh event loop, closing the engine afterwards."""

    async def go() -> T:
        eng = engine if engine is not None else _settings().engine()
        try:
            return await fn(eng)
        finally:
            await eng.close()

    return asyncio.run(go())


def _parse_json(text: str | None, where: str) -> Any:
    return None if text is None else serialization.parse_json_argument(text, where)


# output ----------------------------------------------------------------------------------


def _console() -> Console:
    # A pipe has no width; 80 columns would fold ids and timestamps, so go wider there.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(file=sys.stdout, width=160 if wide else None, highlight=False)


def _plain(value: Any) -> Any:
    """Records as JSON data: dataclasses as dicts, datetimes as ISO 8601, enums as values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(_plain(value), indent=2, ensure_ascii=False))


def _time(at: datetime | float | None, precise: bool = False) -> str:
    if at is None:
        return ""
    if not isinstance(at, datetime):
        at = datetime.fromtimestamp(at, UTC)
    text = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f" if precise else "%Y-%m-%d %H:%M:%S")
    return (text[:-3] if precise else text) + "Z"


def _compact(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _cell(value: Any) -> str:
    return _time(value) if isinstance(value, datetime) else _compact(value)


def _table(title: str | None, columns: dict[str, str], records: list[Any]) -> Table:
    """A table with a column per `header: attribute` of `columns`, a row per record."""
    table = Table(title=title, title_justify="left")
    for name in columns:
        no_wrap = name in ("run", "id", "time", "requested", "deadline", "created", "decided")
        table.add_column(name, no_wrap=no_wrap, overflow="fold")
    for record in records:
        # Text, not str: user data (summaries, reasons) is never read as rich markup
        table.add_row(*(Text(_cell(getattr(record, attr))) for attr in columns.values()))
    return table


RUN_COLUMNS = {"id": "id", "workflow": "workflow", "status": "status",
               "waiting for": "waiting_for", "requested by": "requested_by",
               "created": "created_at", "updated": "updated_at"}  # fmt: skip
APPROVAL_COLUMNS = {"key": "key", "round": "round", "status": "status", "summary": "summary",
                    "proposed": "proposed", "value": "value", "by": "decided_by",
                    "reason": "reason", "decided": "decided_at"}  # fmt: skip
PENDING_COLUMNS = {"run": "run_id", "workflow": "workflow", "key": "key", "round": "round",
                   "summary": "summary", "proposed": "proposed",
                   "requested": "requested_at", "deadline": "deadline"}  # fmt: skip


@dataclasses.dataclass
class _Line:
    time: str
    event: str
    actor: str
    details: str


def _fields(pairs: list[tuple[str, str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(name, Text(value))
    return grid


def _details(event: models.HistoryEvent) -> str:
    parts = []
    for name, value in event.data.items():
        if value is None:
            continue
        if name in ("deadline", "until") and isinstance(value, int | float):
            value = _time(value)
        elif name == "error" and isinstance(value, dict):
            value = f"{value.get('type')}: {value.get('message')}"
        parts.append(f"{name}={_compact(value)}")
    return " ".join(parts)


# app loading -----------------------------------------------------------------------------


def load_app(app: str) -> Engine:
    """Import `module:attr` (attr may be dotted) from the current directory, like uvicorn."""
    module_name, _, attr = app.partition(":")
    if not module_name or not attr:
        raise errors.AppImportError(f'APP must look like "module:engine", got {app!r}')
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise errors.AppImportError(
                f"cannot import {module_name!r} for APP {app!r}: {exc}; run from the folder "
                "that holds it or add that folder to PYTHONPATH"
            ) from None
        raise errors.AppImportError(f"importing {module_name!r} failed: {exc!r}") from None
    except Exception as exc:
        raise errors.AppImportError(f"importing {module_name!r} failed: {exc!r}") from None
    found: Any = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise errors.AppImportError(
                f"module {module_name!r} has no attribute {attr!r} (APP {app!r})"
            ) from None
    if not isinstance(found, Engine):
        raise errors.AppImportError(f"{app!r} is a {type(found).__name__}, not a signoff Engine")
    return found


def _app_engine(app: str) -> Engine:
    """The app's engine, pointed at `--db` when one was given explicitly."""
    engine = load_app(app)
    settings = _settings()
    if settings.db_explicit and engine.url != settings.db:
        engine.configure(url=settings.db)
    return engine


# root ------------------------------------------------------------------------------------


@click.group(
    cls=_Group,
    context_settings={"auto_envvar_prefix": "SIGNOFF", "help_option_names": ["-h", "--help"]},
)
@option(
    "--db",
    envvar="SIGNOFF_DATABASE_URL",
    default=DEFAULT_DB,
    show_default=True,
    metavar="URL",
    help="Database URL: sqlite:///path.db or postgresql://...",
)
@click.version_option(package_name="signoff")
@click.pass_context
def cli(ctx: click.Context, db: str) -> None:
    """Durable human-in-the-loop workflows: run workers, inspect runs, decide approvals."""
    source = ctx.get_parameter_source("db")
    ctx.obj = Settings(db=db, db_explicit=source is not click.core.ParameterSource.DEFAULT)


# worker ----------------------------------------------------------------------------------


@cli.command()
@db_option()
@click.argument("app", envvar="SIGNOFF_APP")
@option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Runs executing at once (default: the Engine's, 256).",
)
@option(
    "--poll-interval",
    metavar="DURATION",
    help='How often to look for work from other processes, e.g. "50ms" (default: the Engine\'s).',
)
@option(
    "--lease",
    metavar="DURATION",
    help="How long a claim on a run lasts without a heartbeat (default: the Engine's).",
)
@option(
    "--drain-timeout",
    metavar="DURATION",
    default="30s",
    show_default=True,
    help="On SIGTERM/SIGINT, how long running steps may take to finish.",
)
@option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def worker(
    app: str,
    concurrency: int | None,
    poll_interval: str | None,
    lease: str | None,
    drain_timeout: str,
    log_level: str,
) -> None:
    """Execute runs of APP's workflows until SIGTERM or Ctrl-C.

    APP is an import string "module:engine" naming a signoff Engine (env SIGNOFF_APP); the
    current directory is importable. With --db (or SIGNOFF_DATABASE_URL) the engine uses
    that database instead of its own.
    """
    engine = _app_engine(app)
    if not engine.workflows:
        raise errors.AppImportError(
            f"{app!r} has no workflows; decorate them with @engine.workflow() in a module "
            "that APP imports"
        )
    # The Engine takes these in its constructor; the options override them when given.
    engine.configure(
        concurrency=concurrency,
        poll_interval=None if poll_interval is None else _seconds(poll_interval, "--poll-interval"),
        lease=None if lease is None else _seconds(lease, "--lease"),
    )
    drain = _seconds(drain_timeout, "--drain-timeout")
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_serve(engine, drain, app))


def _seconds(text: str, what: str) -> float:
    value: durations.Duration = text
    with contextlib.suppress(ValueError):
        value = float(text)  # plain seconds, e.g. "0.05"
    return durations.to_seconds(value, what)


async def _serve(engine: Engine, drain: float, app: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal_.SIGTERM, signal_.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await engine.start_worker()
        names = ", ".join(engine.workflows)
        click.echo(
            f"signoff worker for {app} on {engine.url}: {names} (pid {os.getpid()})", err=True
        )
        await stop.wait()
        for sig in signals:  # a second signal ends the process without draining
            loop.remove_signal_handler(sig)
        click.echo("stopping: letting running steps finish", err=True)
        await engine.stop_worker(drain)
    finally:
        await engine.close()
    click.echo("worker stopped", err=True)


# runs ------------------------------------------------------------------------------------


@cli.group()
def runs() -> None:
    """List, inspect, cancel and retry runs."""


@runs.command("list")
@db_option()
@option("--status", help="pending, running, waiting, completed, failed or cancelled.")
@option("--workflow", help="Only runs of this workflow.")
@option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option()
def runs_list(status: str | None, workflow: str | None, limit: int, as_json: bool) -> None:
    """Runs, newest first."""
    found = _with_engine(lambda e: e.list_runs(status=status, workflow=workflow, limit=limit))
    if as_json:
        _echo_json(found)
        return
    if not found:
        click.echo("no runs")
        return
    _console().print(_table(None, RUN_COLUMNS, found))


@runs.command("show")
@db_option()
@click.argument("run_id", metavar="RUN")
@json_option()
def runs_show(run_id: str, as_json: bool) -> None:
    """A run's fields, its approvals and its timeline."""

    async def fetch(
        e: Engine,
    ) -> tuple[models.Run, list[models.Approval], list[models.HistoryEvent]]:
        return await e.get_run(run_id), await e.approvals(run_id), await e.history(run_id)

    run, approvals, history = _with_engine(fetch)
    if as_json:
        _echo_json({"run": run, "approvals": approvals, "history": history})
        return
    out = _console()
    pairs = [("id", run.id), ("workflow", run.workflow), ("status", run.status.value)]
    if run.waiting_for:
        pairs.append(("waiting for", run.waiting_for))
    if run.wake_at:
        pairs.append(("wakes at", _time(run.wake_at)))
    pairs += [
        ("requested by", run.requested_by or ""),
        ("created", _time(run.created_at)),
        ("updated", _time(run.updated_at)),
        ("args", _compact(run.args)),
        ("kwargs", _compact(run.kwargs)),
    ]
    if run.status is models.RunStatus.COMPLETED:
        pairs.append(("result", _compact(run.result) or "null"))
    if run.error:
        pairs.append(("error", f"{run.error.get('type')}: {run.error.get('message')}"))
    out.print(_fields(pairs))
    if approvals:
        out.print(_table("approvals", APPROVAL_COLUMNS, approvals))
    lines = [_Line(_time(e.at, precise=True), e.type, e.actor or "", _details(e)) for e in history]
    out.print(_table("timeline", {f.name: f.name for f in dataclasses.fields(_Line)}, lines))
    traceback = (run.error or {}).get("traceback")
    if traceback:
        out.print(Text(str(traceback).rstrip()))


@runs.command("cancel")
@db_option()
@click.argument("run_id", metavar="RUN")
@by_option()
@option("--reason", help="Why (recorded in the history).")
@json_option()
def runs_cancel(run_id: str, by: str | None, reason: str | None, as_json: bool) -> None:
    """Cancel an unfinished run; its pending approvals close."""
    run = _with_engine(lambda e: e.cancel(run_id, by=by, reason=reason))
    _report_run(run, "cancelled", as_json)


@runs.command("retry")
@db_option()
@click.argument("run_id", metavar="RUN")
@by_option()
@json_option()
def runs_retry(run_id: str, by: str | None, as_json: bool) -> None:
    """Resume a failed run from the failed step (recorded steps are not redone)."""
    run = _with_engine(lambda e: e.retry(run_id, by=by))
    _report_run(run, "retrying", as_json)


def _report_run(run: models.Run, verb: str, as_json: bool) -> None:
    if as_json:
        _echo_json(run)
    else:
        click.echo(f"{verb} run {run.id} ({run.workflow}): {run.status.value}")


# approvals -------------------------------------------------------------------------------


@cli.group()
def approvals() -> None:
    """Approvals waiting for a decision."""


@approvals.command("list")
@db_option()
@option("--workflow", help="Only approvals of this workflow.")
@option(
    "--run",
    "run_id",
    metavar="RUN",
    envvar="SIGNOFF_APPROVALS_LIST_RUN",
    help="Only approvals of this run.",
)
@option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option()
def approvals_list(workflow: str | None, run_id: str | None, limit: int, as_json: bool) -> None:
    """Pending approvals, oldest first."""
    found = _with_engine(
        lambda e: e.pending_approvals(workflow=workflow, run_id=run_id, limit=limit)
    )
    if as_json:
        _echo_json(found)
        return
    if not found:
        click.echo("no pending approvals")
        return
    _console().print(_table(None, PENDING_COLUMNS, found))


# decisions -------------------------------------------------------------------------------


def _decision_command(
    name: str, status: models.DecisionStatus, doc: str, with_value: bool = False
) -> None:
    def command(
        run_id: str,
        key: str,
        by: str | None,
        reason: str | None,
        as_json: bool,
        value: str | None = None,
    ) -> None:
        edited = _parse_json(value, "--value")  # bad JSON fails before the database opens

        async def decide(e: Engine) -> models.Decision:
            if status is models.DecisionStatus.APPROVED:
                return await e.approve(run_id, key, by=by, reason=reason)
            if status is models.DecisionStatus.REJECTED:
                return await e.reject(run_id, key, by=by, reason=reason)
            if status is models.DecisionStatus.EDITED:
                return await e.edit(run_id, key, edited, by=by, reason=reason)
            return await e.request_changes(run_id, key, by=by, reason=reason)

        decision = _with_engine(decide)
        if as_json:
            _echo_json(decision)
            return
        who = f" by {decision.by}" if decision.by else ""
        click.echo(
            f"{decision.status.value}: approval {decision.key!r} (round "
            f"{decision.round}) of run {run_id}{who}"
        )

    command.__doc__ = doc
    params = [
        click.argument("run_id", metavar="RUN"),
        click.argument("key"),
        by_option(),
        option("--reason", help="Why (shown to the workflow and in the history)."),
    ]
    if with_value:
        params.append(
            option("--value", required=True, metavar="JSON", help="The changed value, as JSON.")
        )
    params += [json_option(), db_option()]
    decorated: Callable[..., None] = command
    for param in reversed(params):
        decorated = param(decorated)
    cli.command(name)(decorated)


_decision_command(
    "approve", models.DecisionStatus.APPROVED, "Approve the proposed value of approval KEY of RUN."
)
_decision_command("reject", models.DecisionStatus.REJECTED, "Reject approval KEY of RUN.")
_decision_command(
    "edit",
    models.DecisionStatus.EDITED,
    "Approve approval KEY of RUN with a changed value (--value JSON).",
    with_value=True,
)
_decision_command(
    "request-changes",
    models.DecisionStatus.CHANGES_REQUESTED,
    "Send approval KEY of RUN back; the workflow may revise and ask again.",
)


# signals and starts ----------------------------------------------------------------------


@cli.command("signal")
@db_option()
@click.argument("run_id", metavar="RUN")
@click.argument("name")
@option("--data", metavar="JSON", help="The payload, as JSON (default: null).")
@by_option()
def signal_cmd(run_id: str, name: str, data: str | None, by: str | None) -> None:
    """Send signal NAME to RUN; kept until the run waits for it."""
    payload = _parse_json(data, "--data")
    _with_engine(lambda e: e.signal(run_id, name, payload, by=by))
    click.echo(f"sent signal {name!r} to run {run_id}")


@cli.command()
@db_option()
@click.argument("workflow")
@option(
    "--input",
    "input_",
    metavar="JSON",
    envvar="SIGNOFF_START_INPUT",
    help="Arguments: a JSON object (keyword arguments) or array (positional ones).",
)
@option(
    "--app",
    envvar="SIGNOFF_APP",
    metavar="APP",
    help='Check WORKFLOW against this app\'s registry ("module:engine").',
)
@option("--run-id", help="Run id; starting again with the same id returns the same run.")
@option("--requested-by", help="Who asked for the run (recorded in the history).")
@json_option()
def start(
    workflow: str,
    input_: str | None,
    app: str | None,
    run_id: str | None,
    requested_by: str | None,
    as_json: bool,
) -> None:
    """Start a run of WORKFLOW (known to a worker of this database, or to --app)."""
    args, kwargs = _split_input(_parse_json(input_, "--input"))
    engine = None
    if app is not None:
        engine = _app_engine(app)
        if workflow not in engine.workflows:
            known = ", ".join(engine.workflows) or "none"
            raise errors.WorkflowNotFound(
                f"{app!r} has no workflow named {workflow!r} (known: {known})", workflow=workflow
            )
    run = _with_engine(
        lambda e: e.start(workflow, *args, run_id=run_id, requested_by=requested_by, **kwargs),
        engine,
    )
    if as_json:
        _echo_json(run)
    else:
        click.echo(f"started run {run.id} ({run.workflow}): {run.status.value}")


def _split_input(value: Any) -> tuple[list[Any], dict[str, Any]]:
    if value is None:
        return [], {}
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict):
        return [], value
    raise errors.InvalidArgument(
        "--input must be a JSON object (keyword arguments) or array (positional arguments), "
        f"got {type(value).__name__}"
    )


# HTTP API ------------------------------------------------------------------------------


@cli.command()
@db_option()
@click.argument("app", envvar="SIGNOFF_APP")
@option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@option(
    "--no-auth",
    is_flag=True,
    help="Answer without API tokens (every caller may do everything): local use only.",
)
@option(
    "--link-secret",
    envvar="SIGNOFF_LINK_SECRET",
    help="Key that signs approval links (at least 16 bytes); without one, links are off.",
)
@option("--public-url", help="Base URL of the links handed out (default: the request's).")
@option(
    "--max-body",
    type=click.IntRange(min=1024),
    default=1_000_000,
    show_default=True,
    help="Largest request body in bytes (413 above).",
)
@option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def serve(
    app: str,
    host: str,
    port: int,
    no_auth: bool,
    link_secret: str | None,
    public_url: str | None,
    max_body: int,
    log_level: str,
) -> None:
    """Serve APP's HTTP API (see docs/http.md) and run a worker in the same process.

    APP is an import string "module:engine" naming a signoff Engine (env SIGNOFF_APP).
    Callers need an API token (`signoff tokens create`) unless --no-auth is given.
    """
    import uvicorn

    from signoff.server import create_app

    engine = _app_engine(app)
    api = create_app(
        engine,
        auth=not no_auth,
        link_secret=link_secret,
        public_url=public_url,
        max_body=max_body,
        run_worker=bool(engine.workflows),
    )
    click.echo(f"signoff API for {app} on http://{host}:{port} ({engine.url})", err=True)
    uvicorn.run(api, host=host, port=port, log_level=log_level, lifespan="on")


@cli.group()
def tokens() -> None:
    """API tokens for the HTTP API (stored hashed; scopes read, start, decide, admin)."""


@tokens.command("create")
@db_option()
@click.argument("name")
@option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["read", "start", "decide", "admin"]),
    help="A scope to grant (repeat for several). The token's NAME is the approver it decides as.",
)
@by_option()
@json_option()
def tokens_create(name: str, scopes: tuple[str, ...], by: str | None, as_json: bool) -> None:
    """Create a token for NAME and print its secret (shown only now)."""
    token, secret = _with_engine(lambda e: e.create_token(name, list(scopes), by=by))
    if as_json:
        _echo_json({"token": token, "secret": secret})
        return
    click.echo(f"token {token.id} for {token.name} ({', '.join(token.scopes)}):")
    click.echo(secret)


@tokens.command("list")
@db_option()
@json_option()
def tokens_list(as_json: bool) -> None:
    """Every token, with its scopes and whether it is revoked (never the secret)."""
    found = _with_engine(lambda e: e.list_tokens())
    if as_json:
        _echo_json(found)
        return
    if not found:
        click.echo("no tokens")
        return
    columns = {"id": "id", "name": "name", "scopes": "scopes", "created": "created_at",
               "revoked": "revoked_at"}  # fmt: skip
    _console().print(_table(None, columns, found))


@tokens.command("revoke")
@db_option()
@click.argument("token_id", metavar="ID")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token at once."""
    token = _with_engine(lambda e: e.revoke_token(token_id))
    click.echo(f"revoked token {token.id} ({token.name})")


# database --------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@db_option()
def db_upgrade() -> None:
    """Create the database or bring its schema up to date; print the schema version."""

    async def upgrade(e: Engine) -> int:
        await e.open()
        return await e.store.schema_version()

    version = _with_engine(upgrade)
    click.echo(f"{_settings().db}: schema version {version}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `signoff` script and `python -m signoff`."""
    cli.main(args=argv, prog_name="signoff")
