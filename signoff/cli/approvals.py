"""Approvals: the inbox (`approvals list`) and the four decisions.

A decision from the CLI always names who made it (`--by`, or `SIGNOFF_ACTOR`), so the
approval's rules (named approvers, separation of duties, quorum) apply to it as to any
other door. `--digest` binds a decision to the version of the approval that was shown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import click

from signoff import errors, models
from signoff.cli import apps, core, output
from signoff.cli.core import cli, json_option, option, where_options
from signoff.engine import Engine

_MIN_DIGEST = 8  # characters of a digest prefix given to --digest


@cli.group()
def approvals() -> None:
    """Approvals waiting for a decision."""


@approvals.command("list")
@where_options
@option("--approver", metavar="WHO", help="Only those WHO may decide (named, by role, escalated).")
@option("--role", help="Only those named for role:ROLE.")
@option("--workflow", help="Only approvals of this workflow.")
@option("--key-prefix", metavar="TEXT", help="Only approvals whose key starts with TEXT.")
@option(
    "--run",
    "run_id",
    metavar="RUN",
    envvar="SIGNOFF_APPROVALS_LIST_RUN",
    help="Only approvals of this run (its id or a unique prefix).",
)
@option("--older-than", metavar="DURATION", help='Only those requested longer ago, e.g. "2d".')
@option("--overdue", is_flag=True, help="Only those whose deadline has passed.")
@option(
    "--order",
    default="oldest",
    show_default=True,
    help="oldest: oldest request first; urgent: soonest deadline first (none last).",
)
@option("--limit", type=click.IntRange(min=1, max=10_000), default=100, show_default=True)
@option("--cursor", help="Where the previous page ended (printed below a full page).")
@json_option()
def approvals_list(
    approver: str | None,
    role: str | None,
    workflow: str | None,
    key_prefix: str | None,
    run_id: str | None,
    older_than: str | None,
    overdue: bool,
    order: str,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Pending approvals, oldest first (or most urgent first), with their digest, votes
    and stage."""
    age = None if older_than is None else core.seconds(older_than, "--older-than")
    if order not in ("oldest", "urgent"):  # before the database opens
        raise core.CliError(f'--order is "oldest" or "urgent", not {order!r:.40}')

    async def fetch(e: Engine) -> models.ApprovalPage:
        run = None if run_id is None else await e.resolve_run_id(run_id)
        return await e.pending_approvals(
            approver=approver,
            role=role,
            workflow=workflow,
            key_prefix=key_prefix,
            run_id=run,
            older_than=age,
            overdue=overdue,
            order="urgent" if order == "urgent" else "oldest",
            limit=limit,
            cursor=cursor,
        )

    page = apps.with_engine(fetch)
    if as_json:
        output.echo_json({"items": list(page), "next_cursor": page.next_cursor})
        return
    if not page:
        click.echo("no pending approvals")
        return
    output.console().print(output.table(None, output.inbox_columns(list(page)), list(page)))
    if page.next_cursor:
        ordered = " --order urgent" if order == "urgent" else ""
        click.echo(f"more: signoff approvals list{ordered} --cursor {page.next_cursor}")


# decisions -------------------------------------------------------------------------------

Decide = Callable[[Engine, "_Ask"], Awaitable[models.Decision]]


def _decision_command(
    name: str, decide: Decide, doc: str, with_value: bool = False, answer: bool = False
) -> None:
    def command(
        run_id: str,
        key: str,
        by: str | None,
        digest: str | None,
        as_json: bool,
        reason: str | None = None,
        value: str | None = None,
        text: str | None = None,
    ) -> None:
        if not by:  # checked before the database opens: nothing is recorded
            raise core.CliError(
                f"{name} needs --by WHO (or SIGNOFF_ACTOR): every decision records who "
                "made it; nothing was recorded"
            )
        if answer and (value is None) == (text is None):
            raise core.CliError(
                "answer needs the answer: --text TEXT, or --value JSON for a question with "
                "a schema (one of them); nothing was recorded"
            )
        edited = core.parse_json(value, "--value")  # bad JSON fails before the database opens
        if text is not None:
            edited = text

        async def go(e: Engine) -> tuple[str, models.Decision]:
            full = await e.resolve_run_id(run_id)
            shown = None if digest is None else await _full_digest(e, full, key, digest)
            return full, await decide(e, _Ask(full, key, by, reason, shown, edited))

        full, decision = apps.with_engine(go)
        if as_json:
            output.echo_json(decision)
        else:
            click.echo(output.decision_line(decision, full))

    command.__doc__ = doc
    params = [
        click.argument("run_id", metavar="RUN"),
        click.argument("key"),
        core.by_option("Who decides (required; recorded with the decision)."),
        *(
            []
            if answer
            else [option("--reason", help="Why (shown to the workflow and in the history).")]
        ),
        option(
            "--digest",
            metavar="DIGEST",
            help="The digest you were shown (or its first 8+ characters): refuse the "
            "decision if the approval has changed since.",
        ),
    ]
    if with_value:
        params.append(
            option("--value", required=True, metavar="JSON", help="The changed value, as JSON.")
        )
    if answer:
        params += [
            option("--text", metavar="TEXT", help="The answer, as text."),
            option("--value", metavar="JSON", help="The answer, as JSON (fits its schema)."),
        ]
    params += [json_option(), where_options]
    decorated: Callable[..., None] = command
    for param in reversed(params):
        decorated = param(decorated)
    cli.command(name)(decorated)


async def _full_digest(e: Engine, run_id: str, key: str, given: str) -> str:
    """The approval's current digest if `given` is a prefix of it, else `given` (which the
    engine then refuses as stale, naming the current one). A changed approval is refused
    either way: the full digest is checked again as the decision is recorded."""
    if len(given) < _MIN_DIGEST:
        raise errors.InvalidArgument(
            f"--digest {given!r} is too short; give at least {_MIN_DIGEST} characters"
        )
    for approval in await e.approvals(run_id):
        pending = approval.key == key and approval.status is models.ApprovalStatus.PENDING
        if pending and approval.digest and approval.digest.startswith(given):
            return approval.digest
    return given


@dataclasses.dataclass(frozen=True, slots=True)
class _Ask:
    run: str
    key: str
    by: str
    reason: str | None
    digest: str | None
    value: Any


async def _approve(e: Engine, a: _Ask) -> models.Decision:
    return await e.approve(a.run, a.key, by=a.by, reason=a.reason, digest=a.digest)


async def _reject(e: Engine, a: _Ask) -> models.Decision:
    return await e.reject(a.run, a.key, by=a.by, reason=a.reason, digest=a.digest)


async def _edit(e: Engine, a: _Ask) -> models.Decision:
    return await e.edit(a.run, a.key, a.value, by=a.by, reason=a.reason, digest=a.digest)


async def _answer(e: Engine, a: _Ask) -> models.Decision:
    return await e.answer(a.run, a.key, a.value, by=a.by, digest=a.digest)


async def _changes(e: Engine, a: _Ask) -> models.Decision:
    return await e.request_changes(a.run, a.key, by=a.by, reason=a.reason, digest=a.digest)


_decision_command("approve", _approve, "Approve the proposed value of approval KEY of RUN.")
_decision_command("reject", _reject, "Reject approval KEY of RUN.")
_decision_command(
    "edit",
    _edit,
    "Approve approval KEY of RUN with a changed value (--value JSON).",
    with_value=True,
)
_decision_command(
    "request-changes",
    _changes,
    "Send approval KEY of RUN back; the workflow may revise and ask again.",
)
_decision_command(
    "answer",
    _answer,
    "Answer question KEY of RUN (asked with ctx.ask): --text TEXT or --value JSON.",
    answer=True,
)
