"""A database outage in the middle of work: every connection is cut (through a proxy the
test controls) while runs execute and decisions arrive; the engine and its worker retry
with backoff and say so in the log; when the database is back, every run completes and
each side effect happened once (an external ledger, written outside signoff, says so)."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import signoff
from signoff import Context, Engine, RunStatus
from tests.acceptance.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

N = 30


def _through(url: str, port: int, query: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"{netloc[0]}@127.0.0.1:{port}" if len(netloc) == 2 else f"127.0.0.1:{port}"
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


async def test_runs_survive_a_database_outage_with_each_effect_once(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="signoff")
    ledger = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)  # not proxied
    await ledger.execute(
        "CREATE TABLE ledger (key TEXT PRIMARY KEY, run_id TEXT NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 1)"
    )
    target = urlsplit(pg_url)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        url = _through(pg_url, proxy.port, "retry_for=30&connect_timeout=2")
        engine = Engine(url, lease="2s", poll_interval=0.05)
        client = Engine(url, poll_interval=0.05)

        async def pay(run_id: str) -> str:
            key = signoff.idempotency_key()
            await asyncio.sleep(0.05)  # a call to the payment provider
            await ledger.execute(
                "INSERT INTO ledger (key, run_id) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET attempts = ledger.attempts + 1",
                (key, run_id),
            )
            return key

        @engine.workflow(name="refund")
        async def refund(ctx: Context, i: int) -> dict[str, object]:
            d = await ctx.approval("manager", proposed={"i": i})
            receipt = await ctx.step(pay, ctx.run_id)
            await ctx.sleep(0.3)
            return {"i": i, "receipt": receipt, "status": d.status.value}

        try:
            async with engine:
                runs = [await client.start("refund", i, run_id=f"r{i:02d}") for i in range(N)]
                for run in runs:
                    assert (await engine.settle(run.id, timeout=20)).status is RunStatus.WAITING
                first, rest = runs[: N // 2], runs[N // 2 :]
                for run in first:
                    await client.approve(run.id, "manager", by="alice")
                await asyncio.sleep(0.03)  # the worker is now executing `pay` steps
                proxy.cut()
                outage = asyncio.get_running_loop().call_later(1.5, proxy.restore)
                # decisions sent during the outage wait for the database, then land
                decisions = await asyncio.gather(
                    *[client.approve(r.id, "manager", by="bob") for r in rest]
                )
                outage.cancel()
                proxy.restore()
                assert [d.by for d in decisions] == ["bob"] * len(rest)
                results = await asyncio.gather(*[engine.result(r.id, timeout=40) for r in runs])
        finally:
            await client.close()
            await engine.close()

    assert proxy.refused > 0  # the outage was real: connection attempts were refused
    rows = await (await ledger.execute("SELECT key, run_id, attempts FROM ledger")).fetchall()
    await ledger.close()
    by_run = {run_id: key for key, run_id, _ in rows}
    assert len(rows) == N and sorted(by_run) == [r.id for r in runs]  # each effect once
    for run, result in zip(runs, results, strict=True):
        assert result["receipt"] == by_run[run.id]
        assert result["status"] == "approved"
    actions = {getattr(r, "action", None) for r in caplog.records}
    assert "store_retry" in actions  # the store said it was retrying
    assert "listen_reconnect" in actions  # the wake-up listener reconnected
