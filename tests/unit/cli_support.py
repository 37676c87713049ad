"""Shared by the CLI tests: a small app module per test, a worker for it, and helpers
that hold the one-line error contract."""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from signoff import Engine, cli

APP_SOURCE = """
from pathlib import Path

from signoff import Context, Directory, Engine, RetryPolicy, Stage

HERE = Path(__file__).parent
engine = Engine("sqlite:///" + str(HERE / "app.db"), poll_interval=0.01, lease="5s",
                directory=Directory({"finance": ["carol"]}))


def calc(order_id: str) -> int:
    return 40 + len(order_id)


@engine.workflow()
async def refund(ctx: Context, order_id: str) -> dict:
    amount = await ctx.step(calc, order_id)
    d = await ctx.approval("manager", summary=f"Refund [bold]{amount}[/bold]",
                           proposed={"amount": amount}, timeout="7d")
    return {"status": str(d.status), "value": d.value, "by": d.by}


@engine.workflow()
async def expense(ctx: Context, amount: int, who: str = "nobody") -> dict:
    return {"amount": amount, "who": who}


@engine.workflow()
async def asks(ctx: Context) -> object:
    return await ctx.ask("Which warehouse?", key="where")


@engine.workflow()
async def waiter(ctx: Context) -> object:
    return await ctx.wait_for_signal("docs")


def check() -> str:
    if not (HERE / "fixed").exists():
        raise RuntimeError("the service is down")
    return "ok"


@engine.workflow()
async def flaky(ctx: Context) -> str:
    return await ctx.step(check, retry=RetryPolicy(attempts=1))


@engine.workflow()
async def payment(ctx: Context, cents: int) -> dict:
    d = await ctx.approval("finance", summary=f"Pay {cents}", proposed={"cents": cents},
                           approvers=["alice", "bob", "role:finance"], quorum=2)
    return {"status": str(d.status), "value": d.value}


@engine.workflow()
async def chained(ctx: Context, cents: int) -> dict:
    d = await ctx.approval_chain("spend", [Stage(name="lead"), Stage(name="cfo")],
                                 summary=f"Spend {cents}", proposed={"cents": cents})
    return {"status": str(d.status)}


not_an_engine = 42
"""

EMPTY_APP = "from signoff import Engine\nengine = Engine('sqlite:///unused.db')\n"


@dataclass
class App:
    name: str  # the module name, so "APP" is f"{name}:engine"
    engine: Engine
    db: str  # the database URL of the app and of the CLI
    path: Path

    @property
    def ref(self) -> str:
        return f"{self.name}:engine"


def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    """Body of the `app` fixture: the app module written, importable, and cleaned up."""
    name = f"cliapp_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIGNOFF_DATABASE_URL", raising=False)
    monkeypatch.delenv("SIGNOFF_BY", raising=False)
    monkeypatch.delenv("SIGNOFF_APP", raising=False)
    module = importlib.import_module(name)
    engine: Engine = module.engine
    yield App(name, engine, engine.url, tmp_path)
    engine.sync.close()
    sys.modules.pop(name, None)


def run_worker(app: App) -> Iterator[Engine]:
    """Body of the `worker` fixture: a worker for the app, in a background thread."""
    with app.engine.sync:
        yield app.engine


def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli.cli, list(args), env=env, catch_exceptions=False)


def ok(app: App, *args: str, env: dict[str, str] | None = None) -> Result:
    result = run_cli("--db", app.db, *args, env=env)
    assert result.exit_code == 0, result.output
    return result


def fails(result: Result, fragment: str) -> str:
    """Assert the one-line error contract and return the message."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]
    return lines[0]


def start_waiting(app: App, worker: Engine, order: str = "ord-1") -> str:
    run = json.loads(ok(app, "start", "refund", "--input", json.dumps([order]), "--json").stdout)
    assert worker.sync.settle(run["id"], timeout=10).status == "waiting"
    return str(run["id"])
