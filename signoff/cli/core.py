"""The CLI's plumbing: the root group, settings, shared options, one-line errors.

Every command goes through `Engine`; none touches SQL. The database comes from `--db`
(or `SIGNOFF_DATABASE_URL`), else from the engine of `--app` (or `SIGNOFF_APP`), else
`sqlite:///signoff.db`. Any `SignoffError` prints one line, `error: <message>`, on stderr
and exits with code 2; usage errors exit with 2 as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click
import pydantic

from signoff import durations, errors, serialization

FC = TypeVar("FC", bound=Callable[..., Any])

DEFAULT_DB = "sqlite:///signoff.db"
ERROR_EXIT = 2
_WHERE = (
    "point at the right database with --db URL (or SIGNOFF_DATABASE_URL), or at your app "
    "with --app module:engine (or SIGNOFF_APP) to use its database; "
    "`signoff db upgrade` creates a new one"
)


class CliError(click.ClickException):
    """A one-line error: `error: <message>` on stderr, exit code 2."""

    exit_code = ERROR_EXIT

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or "failed"


def _message(exc: BaseException, settings: Settings | None) -> str:
    if isinstance(exc, errors.DatabaseNotFound):
        app = settings.app if settings is not None and not settings.db_explicit else None
        if app is None:
            return f"{exc}; {_WHERE}"
        return f"{exc}, the database of {app}; {_WHERE.replace('at your app', 'at another app')}"
    if isinstance(exc, errors.SignoffError):
        return str(exc)
    if isinstance(exc, pydantic.ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
        )
        return f"invalid input: {problems}"
    return f"{exc}; is a worker running for it?"  # a TimeoutError waiting for a run


class _Group(click.Group):
    """The root group: turns library errors raised by any subcommand into `CliError`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (errors.SignoffError, pydantic.ValidationError, TimeoutError) as exc:
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            raise CliError(redact_text(one_line(_message(exc, settings)))) from None


@dataclasses.dataclass
class Settings:
    db: str = DEFAULT_DB
    db_explicit: bool = False  # given by --db or SIGNOFF_DATABASE_URL, not the default
    app: str | None = None  # "module:engine", from --app or SIGNOFF_APP


def settings() -> Settings:
    return click.get_current_context().find_object(Settings) or Settings()


def option(*decls: str, **kw: Any) -> Callable[[FC], FC]:
    """`click.option` that shows its environment variable in `--help`."""
    kw.setdefault("show_envvar", True)
    return click.option(*decls, **kw)


def _set_db(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    found = ctx.find_object(Settings)
    if value is not None and found is not None:
        found.db, found.db_explicit = value, True


def _set_app(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    found = ctx.find_object(Settings)
    if value is not None and found is not None:
        found.app = value


def db_option() -> Callable[[FC], FC]:
    """`--db` after the command name too (`signoff runs list --db ...`)."""
    return click.option(
        "--db",
        metavar="URL",
        expose_value=False,
        is_eager=True,
        allow_from_autoenv=False,
        callback=_set_db,
        help="Database URL (the same as `signoff --db URL ...`).",
    )


def app_option() -> Callable[[FC], FC]:
    """`--app` after the command name too (`signoff approve ... --app app:engine`)."""
    return click.option(
        "--app",
        "app_ref",  # not `app`: worker and serve take APP as an argument too
        metavar="APP",
        expose_value=False,
        is_eager=True,
        allow_from_autoenv=False,
        callback=_set_app,
        help='Use this app\'s engine, its database and workflows ("module:engine").',
    )


def where_options(fn: FC) -> FC:
    """`--db` and `--app`, accepted after any command name."""
    return db_option()(app_option()(fn))


def by_option(help_: str = "Who does this (recorded in the history).") -> Callable[[FC], FC]:
    return option("--by", envvar=["SIGNOFF_ACTOR", "SIGNOFF_BY"], metavar="WHO", help=help_)


def json_option() -> Callable[[FC], FC]:
    return option(
        "--json",
        "as_json",
        is_flag=True,
        envvar="SIGNOFF_JSON",
        help="Print JSON instead of a table.",
    )


def parse_json(text: str | None, where: str) -> Any:
    return None if text is None else serialization.parse_json_argument(text, where)


def seconds(text: str, what: str) -> float:
    value: durations.Duration = text
    with contextlib.suppress(ValueError):
        value = float(text)  # plain seconds, e.g. "0.05"
    return durations.to_seconds(value, what)


# user:password@ in a URL's authority (up to the last "@" before the path), and
# password=... in its query; quotes and spaces end a URL inside a message.
_USERINFO = re.compile(r"""(\b[a-z][a-z0-9+.-]*://[^/\s'":@]*):[^/\s'"]*@""", re.I)
_PASSWORD_OPTION = re.compile(r"""([?&]password=)[^&\s'"]*""", re.I)


def redact_url(url: str) -> str:
    """The URL without its password (`postgresql://app:***@db/x`), to show or log."""
    return redact_text(url)


def redact_text(text: str) -> str:
    """Text (a URL, an error message) with the password of every URL in it replaced."""
    return _PASSWORD_OPTION.sub(r"\1***", _USERINFO.sub(r"\1:***@", text))


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
    help="Database URL: sqlite:///path.db or postgresql://... (default: --app's, else this).",
)
@option(
    "--app",
    envvar="SIGNOFF_APP",
    metavar="APP",
    help='Your app\'s engine, "module:engine": its database and its workflows.',
)
@click.version_option(package_name="signoff")
@click.pass_context
def cli(ctx: click.Context, db: str, app: str | None) -> None:
    """Durable human-in-the-loop workflows: run workers, inspect runs, decide approvals."""
    source = ctx.get_parameter_source("db")
    explicit = source is not click.core.ParameterSource.DEFAULT
    ctx.obj = Settings(db=db, db_explicit=explicit, app=app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `signoff` script and `python -m signoff`."""
    cli.main(args=argv, prog_name="signoff")
