"""JSON log lines carry the run and step they come from, and no secrets; signoff works
(and imports nothing of OpenTelemetry) when OpenTelemetry is not installed."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import signoff.logs
from signoff import Context, Engine

TOKEN = "so_abcdef12_" + "Q" * 43
LINK = "eyJydW4iOiJhYmMifQ.c2lnbmF0dXJlLXNlY3JldA"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The root logger writes JSON lines here for the test (then as before)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    signoff.logs.configure(json=True, level="INFO", stream=out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_lines_logged_while_a_run_executes_carry_its_id_and_step(
    tmp_path: Path, lines: io.StringIO
) -> None:
    engine = Engine(f"sqlite:///{tmp_path / 'l.db'}", poll_interval=0.01)
    app = logging.getLogger("myapp")

    def charge(order: str) -> str:  # sync: in a thread
        app.info("charging %s with %s", order, TOKEN)
        return "ok"

    async def notify(order: str) -> None:
        app.warning("mail about %s", order, extra={"action": "mail"})

    @engine.workflow(name="billing")
    async def billing(ctx: Context, order: str) -> str:
        app.info("billing starts")
        await ctx.step(charge, order, name="charge")
        await ctx.step(notify, order, name="notify")
        raise RuntimeError(f"see https://x.test/links/{LINK} and Bearer {TOKEN}")

    async with engine:
        run = await engine.start(billing, "ord-9")
        assert (await engine.settle(run.id)).status == "failed"
    app.info("after the run")

    got = records(lines)
    mine = [r for r in got if r["logger"] == "myapp"]
    assert [(r["message"], r.get("step")) for r in mine] == [
        ("billing starts", None),
        ("charging ord-9 with [redacted-token]", "charge"),
        ("mail about ord-9", "notify"),
        ("after the run", None),
    ]
    assert all(r["run_id"] == run.id and r["workflow"] == "billing" for r in mine[:3])
    assert "run_id" not in mine[3]
    assert mine[2]["action"] == "mail" and mine[2]["level"] == "warning"
    failed = [r for r in got if r.get("action") == "run_failed"]
    assert failed and failed[0]["run_id"] == run.id
    text = lines.getvalue()
    assert TOKEN not in text and LINK not in text


def test_access_lines_and_exceptions_lose_their_secrets(lines: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/links/{LINK}?x=1", "1.1", 200
    )
    try:
        raise ValueError(f"Authorization: Bearer {TOKEN}")
    except ValueError:
        logging.getLogger("myapp").exception("failed with token=%s", TOKEN)
    text = lines.getvalue()
    assert TOKEN not in text and LINK not in text
    first, second = records(lines)
    assert first["message"] == '127.0.0.1:5000 - "GET /links/[redacted]?x=1 HTTP/1.1" 200'
    assert "[redacted]" in str(second["exception"])


def test_text_lines_name_the_run_too() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(signoff.logs.RunContext())
    handler.setFormatter(logging.Formatter("%(message)s %(run_id)s %(step)s"))
    log = logging.getLogger("tests.text")
    log.addHandler(handler)
    try:
        with signoff.logs.running("r1", "wf"), signoff.logs.stepping("s1"):
            log.warning("inside")
    finally:
        log.removeHandler(handler)
    assert out.getvalue() == "inside r1 s1\n"


BLOCKED = """
import importlib.abc, sys

class NoOtel(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"no {name} here")
        return None

sys.meta_path.insert(0, NoOtel())

import asyncio
import signoff
from signoff import Context, Engine, telemetry

assert not telemetry.AVAILABLE
engine = Engine(sys.argv[1], poll_interval=0.01)
ends = []
engine.hooks.on_complete(ends.append)

def one() -> int:
    return 1

@engine.workflow(name="plain")
async def plain(ctx: Context) -> int:
    return await ctx.step(one) + 1

async def main() -> None:
    async with engine:
        run = await engine.start(plain)
        assert await engine.result(run.id, timeout=10) == 2
    assert engine.telemetry.stats.counters["signoff_run_transitions_total"]
    assert [e.result for e in ends] == [2]

asyncio.run(main())
assert not [m for m in sys.modules if m.startswith("opentelemetry")], "imported"
print("ok")
"""


def test_signoff_runs_without_opentelemetry(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, f"sqlite:///{tmp_path / 'n.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
