"""`signoff deliveries list` and `signoff deliveries retry ID` on a real database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from signoff import cli
from signoff.channels import Route, WebhookChannel
from signoff.testing import FakeClock
from tests.channels.receivers import SECRET, WebhookReceiver
from tests.channels.test_outbox import make_engine, runs_only, waiting_run


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_list_shows_a_dead_message_and_retry_makes_it_due(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    receiver.statuses = [500]
    channel = WebhookChannel("ops", url=receiver.url, secret=SECRET)
    route = Route(channel, events=["approval.requested"], max_attempts=1)

    async def make_dead() -> str:
        engine = make_engine(url, FakeClock(start=1_800_000_000.0), route)
        await runs_only(engine)
        run_id = await waiting_run(engine, "refund", 5)
        await engine.stop_worker()
        await engine.deliver_notifications()
        await engine.close()
        return run_id

    run_id = asyncio.run(make_dead())
    code, out = run_cli("--db", url, "deliveries", "list", "--status", "dead", "--json")
    assert code == 0, out
    [item] = json.loads(out)["items"]
    assert item["run_id"] == run_id and item["status"] == "dead"
    assert item["history"][0]["error"].endswith("answered HTTP 500")
    code, out = run_cli("--db", url, "deliveries", "list", "--run", run_id[:8])
    assert code == 0 and item["id"] in out and "dead" in out

    code, out = run_cli("--db", url, "deliveries", "retry", item["id"])
    assert code == 0 and out.startswith(f"retrying {item['id']} (ops, approval.requested)")
    code, out = run_cli("--db", url, "deliveries", "list", "--status", "pending", "--json")
    assert [i["id"] for i in json.loads(out)["items"]] == [item["id"]]

    code, out = run_cli("--db", url, "deliveries", "retry", "msg_nope")
    assert code == 2 and "no notification with id 'msg_nope'" in out
