"""The audit record: `signoff audit verify` and `signoff audit export`.

`export` writes the chains as JSON lines; `verify` checks the database's chains, or an
export offline (`--file`, no database opened), and lists every changed, removed or
reordered entry. The procedure is in `signoff.audit` and docs/cli.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO

import click

from signoff import audit, errors
from signoff.cli import apps, core, output
from signoff.cli.core import cli, json_option, option, where_options
from signoff.engine import Engine


@cli.group("audit")
def audit_group() -> None:
    """The tamper-evident record of decisions, votes and tokens."""


def _run_option(command: str) -> Callable[[core.FC], core.FC]:
    return option(
        "--run",
        "run_id",
        metavar="RUN",
        envvar=f"SIGNOFF_AUDIT_{command.upper()}_RUN",
        help="Only this run's chain (its id or a unique prefix); default: every chain.",
    )


async def _chain(e: Engine, run_id: str | None) -> str | None:
    return None if run_id is None else await e.resolve_run_id(run_id)


@audit_group.command("verify")
@where_options
@_run_option("verify")
@option(
    "--file",
    "file",
    type=click.File("r", encoding="utf-8"),
    help="Verify this export (JSON lines, `-` for stdin) instead of the database.",
)
@json_option()
def audit_verify(run_id: str | None, file: IO[str] | None, as_json: bool) -> None:
    """Check that no entry was changed, removed or reordered; exit 2 listing any that was."""
    if file is not None:
        checked = audit.Verifier()
        checked.feed(_entries(file))
    else:

        async def go(e: Engine) -> audit.Verifier:
            return await e.verify_audit(await _chain(e, run_id))

        checked = apps.with_engine(go)
    if as_json:
        found = {"entries": checked.entries, "chains": checked.chains}
        output.echo_json({**found, "problems": checked.problems})
    else:
        for problem in checked.problems:
            click.echo(problem)
    if checked.problems:
        raise core.CliError(
            f"the audit record is not intact: {len(checked.problems)} problem(s) in "
            f"{checked.entries} entries"
        )
    if not as_json:
        click.echo(f"intact: {checked.entries} entries in {checked.chains} chain(s)")


@audit_group.command("export")
@where_options
@_run_option("export")
@option(
    "--output",
    "-o",
    "output_",
    envvar="SIGNOFF_AUDIT_EXPORT_OUTPUT",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="Where to write the JSON lines (default: standard output).",
)
def audit_export(run_id: str | None, output_: IO[str]) -> None:
    """Write the audit chains as JSON lines, in chain order, to verify offline."""
    out = output_

    async def go(e: Engine) -> int:
        out.write("")  # an empty record is an empty file, made once the database is found
        written = 0
        async for entry in e.audit_log(await _chain(e, run_id)):
            out.write(json.dumps(entry.to_json(), ensure_ascii=False, separators=(",", ":")))
            out.write("\n")
            written += 1
        return written

    written = apps.with_engine(go)
    click.echo(f"exported {written} audit entries", err=True)


def _entries(export: IO[str]) -> Iterator[audit.AuditEntry]:
    for number, line in enumerate(export, start=1):
        if not line.strip():
            continue
        try:
            yield audit.AuditEntry(**json.loads(line))
        except (ValueError, TypeError) as exc:
            raise errors.InvalidArgument(
                f"line {number} of {getattr(export, 'name', 'the export')} is not an audit "
                f"entry: {exc}"
            ) from None
