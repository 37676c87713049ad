"""Runs: list, show, cancel, retry, purge; start a run; send a signal.

Wherever a run id is taken, a unique prefix of at least 6 characters will do (the demo
and the tables show shortened ids).
"""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from signoff import errors, models
from signoff.cli import apps, core, output
from signoff.cli.core import cli, json_option, option, where_options
from signoff.engine import Engine


@cli.group()
def runs() -> None:
    """List, inspect, cancel and retry runs."""


@runs.command("list")
@where_options
@option("--status", help="pending, running, waiting, blocked, completed, failed or cancelled.")
@option("--workflow", help="Only runs of this workflow.")
@option("--limit", type=click.IntRange(min=1, max=10_000), default=100, show_default=True)
@option("--cursor", help="Where the previous page ended (printed below a full page).")
@json_option()
def runs_list(
    status: str | None, workflow: str | None, limit: int, cursor: str | None, as_json: bool
) -> None:
    """Runs, newest first, a page at a time."""
    page = apps.with_engine(
        lambda e: e.list_runs(status=status, workflow=workflow, limit=limit, cursor=cursor)
    )
    if as_json:
        output.echo_json({"items": list(page), "next_cursor": page.next_cursor})
        return
    if not page:
        click.echo("no runs")
    else:
        output.console().print(output.table(None, dict(output.RUN_COLUMNS), page))
    if page.next_cursor:
        click.echo(f"more: signoff runs list --cursor {page.next_cursor}")


Shown = tuple[models.Run, list[models.Approval], list[models.HistoryEntry]]


@runs.command("show")
@where_options
@click.argument("run_id", metavar="RUN")
@json_option()
def runs_show(run_id: str, as_json: bool) -> None:
    """A run's fields, its approvals and its timeline."""

    async def fetch(e: Engine) -> Shown:
        full = await e.resolve_run_id(run_id)
        return await e.get_run(full), await e.approvals(full), await e.history(full)

    run, approvals, history = apps.with_engine(fetch)
    if as_json:
        output.echo_json({"run": run, "approvals": approvals, "history": history})
        return
    out = output.console()
    out.print(output.run_fields(run))
    if approvals:
        out.print(output.table("approvals", dict(output.APPROVAL_COLUMNS), approvals))
    out.print(output.table("timeline", output.TIMELINE_COLUMNS, history))
    traceback = (run.error or {}).get("traceback")
    if traceback:
        out.print(Text(str(traceback).rstrip()))


@runs.command("cancel")
@where_options
@click.argument("run_id", metavar="RUN")
@core.by_option()
@option("--reason", help="Why (recorded in the history).")
@json_option()
def runs_cancel(run_id: str, by: str | None, reason: str | None, as_json: bool) -> None:
    """Cancel an unfinished run; its pending approvals close."""

    async def cancel(e: Engine) -> models.Run:
        return await e.cancel(await e.resolve_run_id(run_id), by=by, reason=reason)

    _report_run(apps.with_engine(cancel), "cancelled run", as_json)


@runs.command("retry")
@where_options
@click.argument("run_id", metavar="RUN")
@core.by_option()
@json_option()
def runs_retry(run_id: str, by: str | None, as_json: bool) -> None:
    """Resume a failed run from the failed step (recorded steps are not redone), or
    replay a blocked run again."""

    async def retry(e: Engine) -> models.Run:
        return await e.retry(await e.resolve_run_id(run_id), by=by)

    _report_run(apps.with_engine(retry), "retrying run", as_json)


@runs.command("purge")
@where_options
@option(
    "--older-than",
    required=True,
    metavar="DURATION",
    help='Finished runs that finished longer ago than this, e.g. "90d".',
)
@option("--workflow", help="Only runs of this workflow.")
@option(
    "--archive",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Append each run, whole, to FILE as a JSON line before it is removed.",
)
@option("--dry-run", is_flag=True, help="Count what would go; remove nothing.")
@json_option()
def runs_purge(
    older_than: str, workflow: str | None, archive: str | None, dry_run: bool, as_json: bool
) -> None:
    """Remove finished runs older than --older-than with everything of theirs, and
    idempotency records and used link nonces past retention. Unfinished runs, and runs
    with a notification still to deliver, are never removed."""
    age = core.seconds(older_than, "--older-than")  # checked before the database opens
    report = apps.with_engine(
        lambda e: e.purge(age, workflow=workflow, dry_run=dry_run, archive=archive)
    )
    if as_json:
        output.echo_json(report)
        return
    verb = "would remove" if dry_run else "removed"
    line = (
        f"{verb} {report.runs} run(s), {report.idempotency_records} idempotency record(s), "
        f"{report.link_nonces} used link nonce(s)"
    )
    if archive is not None:
        line += f"; {report.archived} run(s) archived to {archive}"
    click.echo(line)


def _report_run(run: models.Run, verb: str, as_json: bool) -> None:
    if as_json:
        output.echo_json(run)
    else:
        click.echo(f"{verb} {run.id} ({run.workflow}): {run.status.value}")


# signals and starts ----------------------------------------------------------------------


@cli.command("signal")
@where_options
@click.argument("run_id", metavar="RUN")
@click.argument("name")
@option("--data", metavar="JSON", help="The payload, as JSON (default: null).")
@core.by_option()
def signal_cmd(run_id: str, name: str, data: str | None, by: str | None) -> None:
    """Send signal NAME to RUN; kept until the run waits for it."""
    payload = core.parse_json(data, "--data")

    async def send(e: Engine) -> str:
        full = await e.resolve_run_id(run_id)
        await e.signal(full, name, payload, by=by)
        return full

    click.echo(f"sent signal {name!r} to run {apps.with_engine(send)}")


@cli.command()
@where_options
@click.argument("workflow")
@option(
    "--input",
    "input_",
    metavar="JSON",
    envvar="SIGNOFF_START_INPUT",
    help="Arguments: a JSON object (keyword arguments) or array (positional ones).",
)
@option("--run-id", help="Run id; starting again with the same id returns the same run.")
@option("--requested-by", help="Who asked for the run (recorded in the history).")
@json_option()
def start(
    workflow: str,
    input_: str | None,
    run_id: str | None,
    requested_by: str | None,
    as_json: bool,
) -> None:
    """Start a run of WORKFLOW (known to a worker of this database, or to --app)."""
    args, kwargs = _split_input(core.parse_json(input_, "--input"))
    app = core.settings().app
    engine = apps.app_engine(app) if app is not None else None
    if engine is not None and workflow not in engine.workflows:
        known = ", ".join(engine.workflows) or "none"
        raise errors.WorkflowNotFound(
            f"{app!r} has no workflow named {workflow!r} (known: {known})", workflow=workflow
        )

    async def go(e: Engine) -> tuple[models.Run, bool]:
        existed = run_id is not None and await _exists(e, run_id)
        run = await e.start(workflow, *args, run_id=run_id, requested_by=requested_by, **kwargs)
        return run, existed

    # Only an app knows its workflows without a database; without one, a missing database
    # would start nothing anyway ("no workflow named ..."), so say where to look instead.
    run, existed = apps.with_engine(go, engine, create=engine is not None)
    if as_json:
        output.echo_json(run)
    elif existed:
        click.echo(f"run {run.id} already existed ({run.workflow}): {run.status.value}")
    else:
        click.echo(f"started run {run.id} ({run.workflow}): {run.status.value}")


async def _exists(e: Engine, run_id: str) -> bool:
    try:
        await e.get_run(run_id)
    except errors.RunNotFound:
        return False
    return True


_START_OPTIONS = {
    "workflow": "the WORKFLOW argument",
    "run_id": "use --run-id",
    "requested_by": "use --requested-by",
}


def _split_input(value: Any) -> tuple[list[Any], dict[str, Any]]:
    if value is None:
        return [], {}
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict):
        taken = sorted(set(value) & set(_START_OPTIONS))
        if taken:  # Engine.start's own keywords cannot also be the workflow's
            raise errors.InvalidArgument(
                f"--input: {taken[0]!r} is not a workflow argument that can be passed by "
                f"name here; it is start's own: {_START_OPTIONS[taken[0]]}"
            )
        return [], value
    raise errors.InvalidArgument(
        "--input must be a JSON object (keyword arguments) or array (positional arguments), "
        f"got {type(value).__name__}"
    )
