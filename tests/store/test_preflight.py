"""The deploy preflight: `engine.check()` and `signoff check APP` replay every unfinished
run against the code about to ship, writing nothing, and name the runs it would strand."""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from signoff import Context, Engine, cli
from signoff.testing import FakeClock
from tests.store.test_patched import DONE, v1, v2, v2_unpatched

APP = """
from signoff import Engine
from tests.store.test_patched import {fn}

engine = Engine({url!r})
engine.workflow("refund")({fn})
"""


async def _waiting_runs(url: str, clock: FakeClock, n: int) -> list[str]:
    old = Engine(url, clock=clock, poll_interval=0.01)
    old.workflow("refund")(v1)

    @old.workflow(name="retired")
    async def retired(ctx: Context) -> None:
        await ctx.approval("x")

    try:
        async with old:
            runs = [(await old.start("refund", f"o{i}")).id for i in range(n)]
            gone = await old.start("retired")
            for run_id in [*runs, gone.id]:
                await old.settle(run_id)
    finally:
        await old.close()
    return [*runs, gone.id]


async def test_check_names_the_runs_a_change_would_strand(store_url: str, clock: FakeClock) -> None:
    *runs, retired = await _waiting_runs(store_url, clock, 3)
    DONE.clear()
    changed = Engine(store_url, clock=clock)
    changed.workflow("refund")(v2_unpatched)
    try:
        report = await changed.check()
        assert report.checked == 4 and not report.ok
        by_run = {b.run_id: b for b in report.broken}
        assert set(by_run) == {*runs, retired}
        assert by_run[runs[0]].seq == 1 and "approval 'manager'" in (by_run[runs[0]].expected or "")
        assert "check_credit" in (by_run[runs[0]].found or "")
        assert "'retired' is not registered" in by_run[retired].message
        journal = await changed.store.get_journal(runs[0])
        assert [e.name for e in journal] == ["prepare", "manager"]  # nothing written
    finally:
        await changed.close()

    patched = Engine(store_url, clock=clock)
    patched.workflow("refund")(v2)
    patched.workflow("retired")(v1)  # any code by that name: it replays or it does not
    try:
        report = await patched.check()
        assert [b.run_id for b in report.broken] == [retired]  # the patch keeps old runs
    finally:
        await patched.close()
    assert DONE == []  # no step ran during the checks


def test_signoff_check_exits_1_listing_stranded_runs(tmp_path: Path, clock: FakeClock) -> None:
    import asyncio

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    runs = asyncio.run(_waiting_runs(url, clock, 2))
    for name, fn in (("shipping_bad", "v2_unpatched"), ("shipping_ok", "v2")):
        (tmp_path / f"{name}.py").write_text(APP.format(fn=fn, url=url))
    sys.path.insert(0, str(tmp_path))
    try:
        bad = CliRunner().invoke(cli.cli, ["check", "shipping_bad:engine"])
        assert bad.exit_code == 1, bad.output
        assert runs[0] in bad.output and "check_credit" in bad.output
        assert "checked 3 unfinished runs" in bad.output and "3 would not replay" in bad.output
        ok = CliRunner().invoke(cli.cli, ["check", "shipping_ok:engine", "--json"])
        assert ok.exit_code == 1 and '"checked": 3' in ok.output  # `retired` is still gone
        none = CliRunner().invoke(cli.cli, ["check"])
        assert none.exit_code == 2 and "give the APP" in none.output
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("shipping_bad", "shipping_ok"):
            sys.modules.pop(name, None)
