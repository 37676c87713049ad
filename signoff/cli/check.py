"""`signoff check APP`: the deploy preflight (see `signoff.preflight`).

Replays every unfinished run's journal against APP's code, writing nothing, and lists
the runs that code would not replay. Exit 0 when all replay, 1 when some would not (a
deploy pipeline stops there), 2 for bad input.
"""

from __future__ import annotations

import dataclasses
import sys

import click

from signoff import preflight
from signoff.cli import apps, core, output
from signoff.cli.core import cli, json_option, where_options


@cli.command("check")
@where_options
@click.argument("app", envvar="SIGNOFF_APP", required=False)
@json_option()
def check(app: str | None, as_json: bool) -> None:
    """Would APP's code still replay the runs that wait? Exit 1 listing those it would not.

    APP is "module:engine" (or --app / SIGNOFF_APP), the code about to be deployed,
    pointed at the database the runs are in (its own, or --db)."""
    name = app or core.settings().app
    if not name:
        raise core.CliError('give the APP to check, "module:engine" (or set SIGNOFF_APP)')
    engine = apps.app_engine(name)
    report: preflight.CheckReport = apps.with_engine(lambda e: e.check(), engine)
    if as_json:
        output.echo_json(
            {
                "checked": report.checked,
                "seconds": round(report.seconds, 3),
                "broken": [dataclasses.asdict(b) for b in report.broken],
            }
        )
    else:
        for broken in report.broken:
            click.echo(f"{broken.run_id} ({broken.workflow}, {broken.status}): {broken.message}")
        verdict = "all replay" if report.ok else f"{len(report.broken)} would not replay"
        click.echo(f"checked {report.checked} unfinished runs in {report.seconds:.1f}s: {verdict}")
    if not report.ok:
        sys.exit(1)
