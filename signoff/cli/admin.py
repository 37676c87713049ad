"""Administration: API tokens for the HTTP API, and the database schema."""

from __future__ import annotations

import click

from signoff.cli import apps, core, output
from signoff.cli.core import cli, json_option, option, where_options
from signoff.engine import Engine


@cli.group()
def tokens() -> None:
    """API tokens for the HTTP API (stored hashed; scopes read, start, decide, admin)."""


@tokens.command("create")
@where_options
@click.argument("name")
@option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["read", "start", "decide", "admin"]),
    help="A scope to grant (repeat for several). The token's NAME is the approver it decides as.",
)
@core.by_option()
@json_option()
def tokens_create(name: str, scopes: tuple[str, ...], by: str | None, as_json: bool) -> None:
    """Create a token for NAME and print its secret (shown only now)."""
    # a token may be made before the first `signoff serve`: this may create the database
    token, secret = apps.with_engine(
        lambda e: e.access.create_token(name, list(scopes), by=by), create=True
    )
    if as_json:
        output.echo_json({"token": token, "secret": secret})
        return
    click.echo(f"token {token.id} for {token.name} ({', '.join(token.scopes)}):")
    click.echo(secret)


@tokens.command("list")
@where_options
@json_option()
def tokens_list(as_json: bool) -> None:
    """Every token, with its scopes and whether it is revoked (never the secret)."""
    found = apps.with_engine(lambda e: e.access.list_tokens())
    if as_json:
        output.echo_json(found)
    elif not found:
        click.echo("no tokens")
    else:
        output.console().print(output.table(None, dict(output.TOKEN_COLUMNS), found))


@tokens.command("revoke")
@where_options
@click.argument("token_id", metavar="ID")
@core.by_option()
def tokens_revoke(token_id: str, by: str | None) -> None:
    """Revoke a token at once."""
    token = apps.with_engine(lambda e: e.access.revoke_token(token_id, by=by))
    click.echo(f"revoked token {token.id} ({token.name})")


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@where_options
def db_upgrade() -> None:
    """Create the database or bring its schema up to date; print the schema version."""

    async def upgrade(e: Engine) -> tuple[str, int]:
        await e.open()
        return e.url, await e.store.schema_version()

    url, version = apps.with_engine(upgrade, create=True)
    click.echo(f"{core.redact_url(url)}: schema version {version}")
