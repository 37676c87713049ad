"""Worker processes killed with SIGKILL between the change that wrote a notification and
its delivery, and in the middle of a delivery: the receiver (a real HTTP server in this
process, checking signatures) gets every notification, once per webhook-id."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff import Engine
from tests.acceptance import test_crash as crash
from tests.acceptance.test_crash import wait_until
from tests.channels import notify_app
from tests.channels.receivers import WebhookReceiver

pytestmark = pytest.mark.slow

N = 10


class Workers(crash.Workers):
    """The crash tests' worker processes, running an app of this folder (`app`) that
    notifies `url`; `start("hold")` starts one whose deliverer does not run."""

    app = notify_app.__name__

    def __init__(self, tmp: Path, url: str) -> None:
        super().__init__(tmp)
        self.url = url

    def command(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", self.app, str(self.db), self.url, *extra]


@pytest.fixture
def workers(tmp_path: Path, receiver: WebhookReceiver) -> Iterator[Workers]:
    with Workers(tmp_path, receiver.url) as w:
        yield w


def start_waiting(client: Engine, n: int) -> list[str]:
    ids = [client.sync.start("notify_refund", i).id for i in range(n)]
    for run_id in ids:
        assert client.sync.settle(run_id, timeout=20).status == "waiting"
    return ids


def requested(receiver: WebhookReceiver) -> Counter[str]:
    """How many times each run's approval.requested was answered 2xx, per webhook-id."""
    return Counter(
        r.payload["data"]["run_id"]
        for r in receiver.delivered()
        if r.payload["type"] == "approval.requested"
    )


def test_killed_between_the_change_and_the_delivery(
    workers: Workers, receiver: WebhookReceiver
) -> None:
    holder = workers.start("hold")  # executes runs, delivers nothing
    client = notify_app.make_engine(f"sqlite:///{workers.db}", receiver.url)
    try:
        ids = start_waiting(client, N)
        workers.kill(holder)
        assert receiver.got == []  # the notifications exist only in the outbox
        workers.start()
        wait_until(lambda: len(requested(receiver)) == N, 20, "every notification")
        time.sleep(0.5)  # anything sent twice would have arrived by now
    finally:
        client.sync.close()
    assert requested(receiver) == Counter(ids)  # each once
    assert len(receiver.got) == N  # and no POST was repeated
    assert all(r.verified for r in receiver.got)


def test_killed_in_the_middle_of_a_delivery(workers: Workers, receiver: WebhookReceiver) -> None:
    receiver.delay = 0.6  # the first worker dies while its POSTs are in flight
    first = workers.start()
    client = notify_app.make_engine(f"sqlite:///{workers.db}", receiver.url)
    try:
        ids = start_waiting(client, N)
        wait_until(lambda: receiver.started > 0, 10, "a POST to start")
        workers.kill(first)
        receiver.delay = 0.0
        workers.start()
        wait_until(lambda: len(requested(receiver)) == N, 30, "every notification")
        wait_until(
            lambda: len(client.sync.deliveries(status="delivered", limit=1000)) == N,
            10,
            "every outcome on record",
        )
        page = client.sync.deliveries(limit=1000)
    finally:
        client.sync.close()
    assert set(requested(receiver)) == set(ids)
    assert receiver.started > N  # what was in flight at the kill was sent again ...
    assert max(d.attempts for d in page) >= 2
    by_run = {d.run_id: d.id for d in page if d.event == "approval.requested"}
    # a retry after the kill reuses the message's webhook-id: a receiver dedupes on it
    for r in receiver.got:
        if r.verified and r.payload["type"] == "approval.requested":
            assert r.id == by_run[r.payload["data"]["run_id"]]
