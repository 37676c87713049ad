"""Worker processes killed with SIGKILL: while runs wait, and in the middle of a step.

The oracle is an external ledger (a separate SQLite file, see crash_app.py): each run's
side effect must be there exactly once, and a step whose result was recorded before the
kill must never run again. Decisions come from this process, through an engine with no
worker, as they would from the CLI or a web handler.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from signoff import Engine, RunStatus
from tests.acceptance import crash_app
from tests.worker_process import ROOT

pytestmark = pytest.mark.slow

N = 50
APP = crash_app.__name__


class Workers:
    """Worker processes of one test; whatever is still alive is killed at the end. A
    worker runs `command()` from the repository's root (`python -m` crash_app here;
    other apps' tests override it) and says it is ready with a file `worker-PID.ready`
    beside the database (`tests.worker_process.run_worker`)."""

    startup = 20.0  # seconds a worker may take to be ready

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "signoff.db"
        self.ledger = tmp / "ledger.db"
        self.procs: list[subprocess.Popen[bytes]] = []

    def command(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", APP, "worker", str(self.db), str(self.ledger), *extra]

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            self.command(*extra), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs.append(proc)
        ready = self.db.with_name(f"worker-{proc.pid}.ready")
        wait_until(lambda: ready.exists(), self.startup, "the worker to start", self)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL

    def check_alive(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None and proc.returncode != -signal.SIGKILL:
                output = (self.tmp / f"worker-{i}.log").read_text(errors="replace")
                raise AssertionError(f"worker {i} exited with {proc.returncode}:\n{output}")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    with Workers(tmp_path) as w:
        yield w


@pytest.fixture
def client(workers: Workers) -> Iterator[Engine]:
    """An engine in this process with no worker: it starts runs and decides."""
    eng = crash_app.make_engine(f"sqlite:///{workers.db}")
    try:
        yield eng
    finally:
        eng.sync.close()


def wait_until(
    cond: Callable[[], bool], timeout: float, what: str, workers: Workers | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if workers is not None:
            workers.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def ledger(workers: Workers, sql: str) -> list[tuple[Any, ...]]:
    conn = crash_app.connect_ledger(workers.ledger)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def per_run(workers: Workers, table: str, where: str = "1") -> Counter[str]:
    return Counter(
        {
            run_id: count
            for run_id, count in ledger(
                workers, f"SELECT run_id, COUNT(*) FROM {table} WHERE {where} GROUP BY run_id"
            )
        }
    )


def count_status(eng: Engine, status: RunStatus) -> int:
    return len(eng.sync.list_runs(status=status, limit=10 * N))


def test_kill_while_runs_wait_then_decide_without_a_worker(
    workers: Workers, client: Engine
) -> None:
    first = workers.start()
    runs = [client.sync.start(crash_app.crash_flow, n).id for n in range(N)]
    wait_until(
        lambda: count_status(client, RunStatus.WAITING) == N, 30, "every run to wait", workers
    )
    workers.kill(first)

    # decided while no worker runs: nothing executes yet, nothing is lost
    for run_id in runs:
        decision = client.sync.approve(run_id, "manager", by="tester", reason="go")
        assert decision.by == "tester"
    assert ledger(workers, "SELECT COUNT(*) FROM effects") == [(0,)]
    assert count_status(client, RunStatus.COMPLETED) == 0

    workers.start()
    wait_until(
        lambda: count_status(client, RunStatus.COMPLETED) == N, 30, "every run to complete", workers
    )

    results = [client.sync.result(run_id, timeout=5) for run_id in runs]
    assert sorted(r["n"] for r in results) == list(range(N))
    assert all(r["status"] == "done" for r in results)
    effects = per_run(workers, "effects")
    assert effects == Counter({run_id: 1 for run_id in runs}), "each effect exactly once"
    assert {r["key"] for r in results} == {
        k for (k,) in ledger(workers, "SELECT idempotency_key FROM effects")
    }
    # prepare ran once, before the kill; nothing was recomputed after it
    assert per_run(workers, "attempts", "step = 'prepare'") == Counter(
        {run_id: 1 for run_id in runs}
    )
    assert per_run(workers, "attempts", "step = 'effect'") == Counter(
        {run_id: 1 for run_id in runs}
    )
    for run_id in runs[:3]:
        decided = [e for e in client.sync.history(run_id) if e.type == "approval_decided"]
        assert [(e.actor, e.data["status"]) for e in decided] == [("tester", "approved")]


def test_kill_in_the_middle_of_the_side_effect_step(workers: Workers, client: Engine) -> None:
    first = workers.start()
    runs = {client.sync.start(crash_app.crash_flow, n, "slow").id: n for n in range(N)}
    wait_until(
        lambda: count_status(client, RunStatus.WAITING) == N, 30, "every run to wait", workers
    )
    for run_id in runs:
        client.sync.approve(run_id, "manager", by="tester")
    # every run is inside the effect step; the even ones have applied their effect
    wait_until(
        lambda: (
            ledger(workers, "SELECT COUNT(*) FROM attempts WHERE step = 'effect'") == [(N,)]
            and ledger(workers, "SELECT COUNT(*) FROM effects") == [(N // 2,)]
        ),
        30,
        "every run to enter the effect step",
        workers,
    )
    workers.kill(first)
    pid = first.pid

    done_before = {r.id for r in client.sync.list_runs(status=RunStatus.COMPLETED, limit=N)}
    applied_before = set(per_run(workers, "effects"))
    cut = set(runs) - done_before
    # the kill caught runs both before and after their effect, with the step unrecorded
    assert cut & applied_before, "no run was killed after applying its effect"
    assert cut - applied_before, "no run was killed before applying its effect"

    workers.start()
    wait_until(
        lambda: count_status(client, RunStatus.COMPLETED) == N,
        45,
        "every run to complete after the lease expired",
        workers,
    )

    results = {run_id: client.sync.result(run_id, timeout=5) for run_id in runs}
    assert all(r["status"] == "done" and r["n"] == runs[i] for i, r in results.items())
    effects = per_run(workers, "effects")
    calls = per_run(workers, "attempts", "step = 'effect'")
    ratio = sum(calls.values()) / N
    assert effects == Counter({run_id: 1 for run_id in runs}), (
        f"each effect exactly once; effect step calls per run: {ratio:.2f}"
    )
    # a step cut by the kill ran again (at-least-once) under the same key ...
    assert {run_id: calls[run_id] for run_id in cut} == {run_id: 2 for run_id in cut}, (
        f"effect step calls per run: {ratio:.2f}"
    )
    assert all(calls[run_id] == 1 for run_id in done_before)
    keys = dict(ledger(workers, "SELECT run_id, idempotency_key FROM effects"))
    assert all(results[run_id]["key"] == keys[run_id] for run_id in runs)
    # ... by the new worker, while the recorded step before the wait was not redone
    retaken = per_run(workers, "attempts", f"step = 'effect' AND pid != {pid}")
    assert set(retaken) == cut
    assert per_run(workers, "attempts", "step = 'prepare'") == Counter(
        {run_id: 1 for run_id in runs}
    )
    # the takeover is on the record: who held the run, who took it over, and when
    for run_id in cut:
        taken = [e for e in client.sync.history(run_id) if e.type == "run_taken_over"]
        assert len(taken) == 1, run_id
        assert f":{pid}:" in taken[0].data["from"] and taken[0].data["to"] != taken[0].data["from"]
        assert taken[0].data["lease_expired_at"] is not None


def test_app_module_loads_as_module_engine(tmp_path: Path) -> None:
    """`signoff worker tests.acceptance.crash_app:engine` finds the engine, configured by env."""
    env = {
        **os.environ,
        "CRASH_DB": f"sqlite:///{tmp_path / 'x.db'}",
        "CRASH_LEDGER": str(tmp_path / "l.db"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.acceptance.crash_app import engine, LEDGER; "
            "print(engine.url, ','.join(engine.workflows), LEDGER)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        f"sqlite:///{tmp_path / 'x.db'}",
        "crash_flow,parallel_flow",
        str(tmp_path / "l.db"),
    ]


def test_a_step_beside_a_wait_is_never_cut_off_across_workers(
    workers: Workers, client: Engine
) -> None:
    """Two gated calls started together in each run, two worker processes: the first
    approval's step is still sending when the second approval arrives and parks the run
    again. Each step runs exactly once, in one process: no process crashed, so nothing
    may run twice."""
    workers.start()
    workers.start()
    n = 8
    runs = [client.sync.start(crash_app.parallel_flow, i).id for i in range(n)]
    wait_until(
        lambda: count_status(client, RunStatus.WAITING) == n,
        30,
        "every run to wait on both approvals",
        workers,
    )
    for run_id in runs:
        assert sorted(a.key for a in client.sync.pending_approvals(run_id=run_id)) == [
            "mail:1",
            "mail:2",
        ]
        client.sync.approve(run_id, "mail:1", by="tester")
    # the first mails are being sent (they linger); now the second approvals arrive
    wait_until(
        lambda: ledger(workers, "SELECT COUNT(*) FROM effects") == [(n,)],
        30,
        "the first mails to be applied",
        workers,
    )
    for run_id in runs:
        client.sync.approve(run_id, "mail:2", by="tester")
    wait_until(
        lambda: count_status(client, RunStatus.COMPLETED) == n, 60, "every run to complete", workers
    )

    effects = per_run(workers, "effects")
    assert effects == Counter({run_id: 2 for run_id in runs}), "each mail exactly once"
    legal = per_run(workers, "attempts", "step = 'mail:legal'")
    finance = per_run(workers, "attempts", "step = 'mail:finance'")
    assert legal == finance == Counter({run_id: 1 for run_id in runs}), "never cut off"
    for run_id in runs:
        result = client.sync.result(run_id, timeout=5)
        assert len(set(result["keys"])) == 2
