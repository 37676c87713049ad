"""Slack workers killed with SIGKILL between the change that wrote a notification and its
delivery, and in the middle of updating messages: every approval gets one message (none
posted twice), and every message ends showing the decision, its updates the same call
each time they were made (Slack's `chat.update` is idempotent)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff import Engine
from tests.channels import slack_app
from tests.channels.slack_standin import Call, SlackStandIn, buttons, text_of
from tests.channels.test_crash_delivery import Workers, wait_until  # the same harness


class SlackWorkers(Workers):
    """Worker processes of slack_app.py, posting to the stand-in Slack."""

    app = slack_app.__name__


pytestmark = pytest.mark.slow

N = 10


@pytest.fixture
def workers(tmp_path: Path, slack: SlackStandIn) -> Iterator[Workers]:
    with SlackWorkers(tmp_path, slack.api_url) as w:
        yield w


def start_waiting(client: Engine, n: int) -> list[str]:
    ids = [client.sync.start("slack_refund", i).id for i in range(n)]
    for run_id in ids:
        assert client.sync.settle(run_id, timeout=20).status == "waiting"
    return ids


def final_updates(slack: SlackStandIn) -> dict[str, list[str]]:
    """Per posted message (its ts): the blocks of each update, as JSON."""
    found: dict[str, list[str]] = {}
    for call in slack.of("chat.update"):
        if (call.answer or {}).get("ok"):
            found.setdefault(call.args["ts"], []).append(json.dumps(call.args["blocks"]))
    return found


def test_killed_between_the_change_and_the_post(workers: Workers, slack: SlackStandIn) -> None:
    holder = workers.start("hold")
    client = slack_app.make_engine(f"sqlite:///{workers.db}", slack.api_url)
    try:
        ids = start_waiting(client, N)
        workers.kill(holder)
        assert slack.calls == []  # the notifications exist only in the outbox
        workers.start()
        wait_until(lambda: len(slack.posts()) >= N, 20, "every message")
        wait_until(
            lambda: len(client.sync.deliveries(status="delivered", limit=1000)) == N,
            10,
            "every outcome on record",
        )
    finally:
        client.sync.close()
    runs = Counter(json.loads(buttons(p)["signoff_approve"]["value"])["run"] for p in slack.posts())
    assert runs == Counter(ids)  # one message per approval
    assert len(slack.of("chat.postMessage")) == N


def test_killed_while_updating_messages(workers: Workers, slack: SlackStandIn) -> None:
    first = workers.start()
    client = slack_app.make_engine(f"sqlite:///{workers.db}", slack.api_url)
    try:
        ids = start_waiting(client, N)
        wait_until(lambda: len(slack.posts()) == N, 20, "every message")
        slack.delay = 0.6  # the first worker dies while its updates are in flight
        for run_id in ids:
            client.sync.approve(run_id, "manager", by="alice")
        wait_until(lambda: slack.started > 0, 10, "an update to start")
        workers.kill(first)
        slack.delay = 0.0
        workers.start()
        wait_until(lambda: len(final_updates(slack)) == N, 30, "every message updated")
        wait_until(
            lambda: len(client.sync.deliveries(status="delivered", limit=1000)) == 2 * N,
            10,
            "every outcome on record",
        )
        page = client.sync.deliveries(limit=1000)
    finally:
        client.sync.close()
    assert len(slack.of("chat.postMessage")) == N  # nothing posted twice
    posted = {(p.answer or {})["ts"] for p in slack.posts()}
    updates = final_updates(slack)
    assert set(updates) == posted
    for shown in updates.values():
        assert len(set(shown)) == 1  # a repeated update is the same call
        last = Call("chat.update", {"blocks": json.loads(shown[-1])}, None)
        assert "Approved by *alice*" in text_of(last) and buttons(last) == {}
    assert slack.started > N  # what was in flight at the kill was sent again ...
    assert max(d.attempts for d in page) >= 2  # ... by a second attempt of its delivery
