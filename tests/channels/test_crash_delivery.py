"""Worker processes killed with SIGKILL between the change that wrote a notification and
its delivery, and in the middle of a delivery: the receiver (a real HTTP server in this
process, checking signatures) gets every notification, once per webhook-id."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from signoff import Engine
from tests.channels import notify_app
from tests.channels.receivers import WebhookReceiver, serve_webhooks

pytestmark = pytest.mark.slow

N = 10
APP = Path(notify_app.__file__).resolve()


class Workers:
    def __init__(self, tmp: Path, hook_url: str) -> None:
        self.tmp, self.hook_url = tmp, hook_url
        self.db = tmp / "signoff.db"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, str(APP), str(self.db), self.hook_url, *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        ready = self.db.with_name(f"worker-{proc.pid}.ready")
        wait_until(lambda: ready.exists() or proc.poll() is not None, 20, "a worker")
        assert proc.poll() is None, (self.tmp / f"worker-{len(self.procs) - 1}.log").read_text()
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    yield from serve_webhooks(WebhookReceiver())


@pytest.fixture
def workers(tmp_path: Path, receiver: WebhookReceiver) -> Iterator[Workers]:
    w = Workers(tmp_path, receiver.url)
    try:
        yield w
    finally:
        w.close()


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
