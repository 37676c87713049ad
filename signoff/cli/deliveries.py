"""Notifications: `signoff deliveries list` and `signoff deliveries retry ID`.

Every message the outbox holds, newest first, with its channel, event, status, attempts
and last error (`--json`: each attempt too); `retry` makes a dead message due again.
"""

from __future__ import annotations

import click

from signoff import outbox
from signoff.cli import apps, output
from signoff.cli.core import cli, json_option, option, where_options
from signoff.engine import Engine

COLUMNS: dict[str, output.Column] = {
    "id": "id", "channel": "channel", "event": "event", "run": "run_id", "key": "key",
    "status": "status", "attempts": "attempts", "created": "created_at", "due": "due_at",
    "last error": "last_error",
}  # fmt: skip


@cli.group("deliveries")
def deliveries_group() -> None:
    """Notifications sent through channels (webhooks, email): outcomes and retries."""


@deliveries_group.command("list")
@where_options
@option("--status", type=click.Choice([s.value for s in outbox.DeliveryStatus]))
@option("--run", "run_id", metavar="RUN", help="Only this run's (its id or a unique prefix).")
@option("--channel", help="Only this channel's.")
@option("--limit", type=click.IntRange(min=1, max=1000), default=100, show_default=True)
@json_option()
def deliveries_list(
    status: str | None, run_id: str | None, channel: str | None, limit: int, as_json: bool
) -> None:
    """Notifications, newest first, with their attempts and last error."""

    async def fetch(e: Engine) -> outbox.DeliveryPage:
        run = None if run_id is None else await e.resolve_run_id(run_id)
        return await e.deliveries(status=status, run_id=run, channel=channel, limit=limit)

    found = apps.with_engine(fetch)
    if as_json:
        output.echo_json({"items": found.items, "next_cursor": found.next_cursor})
    elif not found:
        click.echo("no deliveries")
    else:
        output.console().print(output.table(None, COLUMNS, found.items))


@deliveries_group.command("retry")
@where_options
@click.argument("message_id", metavar="ID")
@option("--attempts", type=click.IntRange(min=1), default=3, show_default=True,
        help="How many more attempts it gets.")  # fmt: skip
@json_option()
def deliveries_retry(message_id: str, attempts: int, as_json: bool) -> None:
    """Try a dead (or waiting) notification again now; a worker delivers it."""
    found = apps.with_engine(lambda e: e.retry_delivery(message_id, attempts=attempts))
    if as_json:
        output.echo_json(found)
    else:
        click.echo(f"retrying {found.id} ({found.channel}, {found.event}): {found.status.value}")
