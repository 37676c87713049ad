"""`signoff mcp APP --as alice`: an MCP server on stdin/stdout (see signoff/mcp_server.py)."""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from signoff.cli import apps, core
from signoff.cli.core import cli, option, where_options


@cli.command("mcp")
@where_options
@click.argument("app", envvar="SIGNOFF_APP", required=False)
@option(
    "--as",
    "person",
    envvar="SIGNOFF_MCP_AS",
    metavar="WHO",
    help="The person the assistant acts for: whose inbox, who decides and asks.",
)
@option(
    "--worker/--no-worker",
    default=True,
    show_default=True,
    help="Run a worker in this process (else another process runs APP's runs).",
)
@option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
)
def mcp(app: str | None, person: str | None, worker: bool, log_level: str) -> None:
    """Serve APP over MCP (stdio) for an assistant acting as a person: start workflows,
    list and decide that person's approvals, ask people questions.

    APP is an import string "module:engine" (env SIGNOFF_APP). Logs go to stderr; stdout
    carries the protocol. Needs `pip install 'signoff[mcp]'`.
    """
    try:
        from signoff import mcp_server
    except ImportError as exc:  # the mcp extra is not installed
        raise core.CliError(f"{exc}; install it with pip install 'signoff[mcp]'") from None
    app = app or core.settings().app
    if not app:
        raise core.CliError('give the APP to serve, "module:engine" (or set SIGNOFF_APP)')
    if not person or not person.strip():
        raise core.CliError("give the person the assistant acts for: --as WHO (or SIGNOFF_MCP_AS)")
    engine = apps.app_engine(app)
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(mcp_server.serve_stdio(engine, person=person.strip(), worker=worker))
