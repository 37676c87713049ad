"""Long-running processes: `signoff worker` and `signoff serve` (HTTP API plus a worker).

Neither ever shows the database password: URLs are redacted wherever they are printed.
"""

from __future__ import annotations

import asyncio
import os
import signal as signal_
import sys
from typing import TYPE_CHECKING

import click

from signoff import errors, logs
from signoff.cli import apps, core
from signoff.cli.core import cli, option, where_options
from signoff.engine import Engine
from signoff.gc_tuning import tune_gc

if TYPE_CHECKING:
    from signoff.server import ProxyAuth

_LEVELS = click.Choice(["debug", "info", "warning", "error"])
_FORMATS = click.Choice(["text", "json"])
_LOG_FORMAT_HELP = "json: one JSON object per line, with run_id and step while a run executes."


def _app(given: str | None) -> str:
    """APP from the argument, else from `--app`/`SIGNOFF_APP`."""
    app = given or core.settings().app
    if not app:
        raise core.CliError('give the APP to run, "module:engine" (or set SIGNOFF_APP)')
    return app


@cli.command()
@where_options
@click.argument("app", envvar="SIGNOFF_APP", required=False)
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
@option("--log-level", type=_LEVELS, default="info", show_default=True)
@option("--log-format", type=_FORMATS, default="text", show_default=True, help=_LOG_FORMAT_HELP)
def worker(
    app: str | None,
    concurrency: int | None,
    poll_interval: str | None,
    lease: str | None,
    drain_timeout: str,
    log_level: str,
    log_format: str,
) -> None:
    """Execute runs of APP's workflows until SIGTERM or Ctrl-C.

    APP is an import string "module:engine" naming a signoff Engine (env SIGNOFF_APP); the
    current directory is importable. With --db (or SIGNOFF_DATABASE_URL) the engine uses
    that database instead of its own.
    """
    app = _app(app)
    engine = apps.app_engine(app)
    if not engine.workflows:
        raise errors.AppImportError(
            f"{app!r} has no workflows; decorate them with @engine.workflow() in a module "
            "that APP imports"
        )
    # The Engine takes these in its constructor; the options override them when given.
    engine.configure(
        concurrency=concurrency,
        poll_interval=None
        if poll_interval is None
        else core.seconds(poll_interval, "--poll-interval"),
        lease=None if lease is None else core.seconds(lease, "--lease"),
    )
    drain = core.seconds(drain_timeout, "--drain-timeout")
    logs.configure(json=log_format == "json", level=log_level, stream=sys.stderr)
    tune_gc()
    asyncio.run(_work(engine, drain, app))


async def _work(engine: Engine, drain: float, app: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal_.SIGTERM, signal_.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await engine.start_worker()
        names = ", ".join(engine.workflows)
        where = core.redact_url(engine.url)
        click.echo(f"signoff worker for {app} on {where}: {names} (pid {os.getpid()})", err=True)
        await stop.wait()
        for sig in signals:  # a second signal ends the process without draining
            loop.remove_signal_handler(sig)
        click.echo("stopping: letting running steps finish", err=True)
        await engine.stop_worker(drain)
    finally:
        await engine.close()
    click.echo("worker stopped", err=True)


@cli.command()
@where_options
@click.argument("app", envvar="SIGNOFF_APP", required=False)
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
    "--metrics",
    is_flag=True,
    help="Serve /metrics for Prometheus (a token with the read scope unless --no-auth).",
)
@option(
    "--proxy-header",
    metavar="HEADER",
    help="Inbox sign-in by a reverse proxy's header naming the person (e.g. X-Forwarded-User), "
    "believed only from --trusted-proxy addresses.",
)
@option(
    "--trusted-proxy",
    "trusted_proxies",
    metavar="CIDR",
    multiple=True,
    help="Address or CIDR block of the proxy that sets --proxy-header (repeatable).",
)
@option(
    "--proxy-roles-header",
    metavar="HEADER",
    help="The proxy's header listing the person's groups, comma-separated.",
)
@option(
    "--proxy-role",
    "proxy_roles",
    metavar="GROUP=SCOPES",
    multiple=True,
    help='Scopes a proxy group adds to "decide", e.g. "ops=read,start" (repeatable).',
)
@option(
    "--cors-origin",
    "cors_origins",
    metavar="ORIGIN",
    multiple=True,
    help="An origin whose pages may call the API and open ticketed streams, e.g. "
    "https://app.example.com (repeatable).",
)
@option("--log-level", type=_LEVELS, default="info", show_default=True)
@option("--log-format", type=_FORMATS, default="text", show_default=True, help=_LOG_FORMAT_HELP)
def serve(
    app: str | None,
    host: str,
    port: int,
    no_auth: bool,
    link_secret: str | None,
    public_url: str | None,
    max_body: int,
    metrics: bool,
    proxy_header: str | None,
    trusted_proxies: tuple[str, ...],
    proxy_roles_header: str | None,
    proxy_roles: tuple[str, ...],
    cors_origins: tuple[str, ...],
    log_level: str,
    log_format: str,
) -> None:
    """Serve APP's HTTP API (see docs/http.md) and run a worker in the same process.

    APP is an import string "module:engine" naming a signoff Engine (env SIGNOFF_APP).
    Callers need an API token (`signoff tokens create`) unless --no-auth is given.
    """
    import uvicorn

    from signoff.server import create_app

    app = _app(app)
    engine = apps.app_engine(app)
    api = create_app(
        engine,
        auth=not no_auth,
        link_secret=link_secret,
        public_url=public_url,
        max_body=max_body,
        run_worker=bool(engine.workflows),
        metrics=metrics,
        proxy_auth=_proxy_auth(proxy_header, trusted_proxies, proxy_roles_header, proxy_roles),
        cors_origins=cors_origins,
    )
    where = core.redact_url(engine.url)
    click.echo(f"signoff API for {app} on http://{host}:{port} ({where})", err=True)
    tune_gc()
    if log_format == "json":  # uvicorn's loggers go to the root's JSON handler
        logs.configure(json=True, level=log_level, stream=sys.stderr)
        uvicorn.run(api, host=host, port=port, log_level=log_level, lifespan="on", log_config=None)
    else:
        uvicorn.run(api, host=host, port=port, log_level=log_level, lifespan="on")


def _proxy_auth(
    header: str | None, trusted: tuple[str, ...], roles_header: str | None, roles: tuple[str, ...]
) -> ProxyAuth | None:
    """The --proxy-* options as a `ProxyAuth` (None without --proxy-header)."""
    from signoff.server import ProxyAuth

    if header is None:
        if trusted or roles_header or roles:
            raise core.CliError("--trusted-proxy and --proxy-role* need --proxy-header")
        return None
    if not trusted:
        raise core.CliError("--proxy-header needs --trusted-proxy: the proxy's address or CIDR")
    role_scopes: dict[str, list[str]] = {}
    for given in roles:
        group, eq, scopes = given.partition("=")
        if not eq or not group.strip():
            raise core.CliError(f"--proxy-role {given!r}: write GROUP=SCOPE,SCOPE")
        role_scopes[group.strip()] = [s.strip() for s in scopes.split(",") if s.strip()]
    return ProxyAuth(header, trusted, roles_header=roles_header, role_scopes=role_scopes)
