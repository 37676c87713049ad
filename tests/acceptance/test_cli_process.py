"""The CLI as real processes: a worker process, and decisions from other processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

APP = """
from signoff import Context, Engine

engine = Engine("sqlite:///not-this-one.db")   # the CLI's --db replaces it


def calc(order_id: str) -> int:
    return 100 + len(order_id)


@engine.workflow()
async def refund(ctx: Context, order_id: str) -> dict:
    amount = await ctx.step(calc, order_id)
    d = await ctx.approval("manager", summary=f"Refund {amount}", proposed={"amount": amount})
    return {"status": str(d.status), "amount": d.value["amount"] if d.approved else 0}
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


@pytest.fixture
def worker(workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (workdir / "worker.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "signoff",
            "worker",
            "app:engine",
            "--db",
            "sqlite:///cli.db",
            "--poll-interval",
            "20ms",
            "--lease",
            "5s",
        ],
        cwd=workdir,
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def signoff(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signoff", "--db", "sqlite:///cli.db", *args],
        cwd=workdir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_worker_process_runs_decisions_from_other_processes(
    workdir: Path, worker: subprocess.Popen[bytes]
) -> None:
    log = workdir / "worker.log"

    def ready() -> bool:
        assert worker.poll() is None, log.read_text()
        return b"signoff worker for app:engine" in log.read_bytes()

    _wait_for(ready, "the worker")
    assert not (workdir / "not-this-one.db").exists()

    started = signoff(workdir, "start", "refund", "--input", '["ord-1"]', "--json")
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["id"]

    def status() -> str:
        shown = signoff(workdir, "runs", "show", run_id, "--json")
        assert shown.returncode == 0, shown.stderr
        return str(json.loads(shown.stdout)["run"]["status"])

    _wait_for(lambda: status() == "waiting", "the run to wait for its approval")
    pending = signoff(workdir, "approvals", "list", "--json")
    items = json.loads(pending.stdout)["items"]
    assert [(a["run_id"], a["key"]) for a in items] == [(run_id, "manager")]

    approved = signoff(workdir, "approve", run_id, "manager", "--by", "alice", "--reason", "ok")
    assert approved.returncode == 0, approved.stderr
    _wait_for(lambda: status() == "completed", "the run to complete")

    shown = signoff(workdir, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "run_completed" in shown.stdout and "alice" in shown.stdout
    result = json.loads(signoff(workdir, "runs", "show", run_id, "--json").stdout)["run"]
    assert result["result"] == {"status": "approved", "amount": 105}

    conflict = signoff(workdir, "reject", run_id, "manager", "--by", "bob")
    assert conflict.returncode == 2
    assert conflict.stderr.strip().splitlines() == [
        f"error: approval 'manager' of run {run_id} was already approved by alice; "
        "the first decision stands"
    ]

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    assert b"worker stopped" in log.read_bytes()
    assert b"Traceback" not in log.read_bytes()


@pytest.mark.slow
def test_worker_process_app_that_does_not_import(workdir: Path) -> None:
    done = signoff(workdir, "worker", "missing_module:engine")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: cannot import 'missing_module' for APP 'missing_module:engine': No module "
        "named 'missing_module'; run from the folder that holds it or add that folder to "
        "PYTHONPATH"
    ]


def _read_until(log: Path, proc: subprocess.Popen[bytes], marker: bytes) -> str:
    def seen() -> bool:
        assert proc.poll() is None, log.read_text()
        return marker in log.read_bytes()

    _wait_for(seen, marker.decode())
    return log.read_text()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("command", ["worker", "serve"])
def test_worker_and_serve_never_print_the_password(
    workdir: Path, pg_url: str, command: str
) -> None:
    # trust auth takes any password, so a real one can be given and must stay hidden
    parts = urlsplit(pg_url)
    user = parts.username or "postgres"
    url = urlunsplit(parts._replace(netloc=f"{user}:hunter2secret@{parts.hostname}:{parts.port}"))
    log_path = workdir / f"{command}.log"
    extra = ["--port", "0", "--no-auth"] if command == "serve" else []
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "signoff", "--db", url, command, "app:engine", *extra],
            cwd=workdir,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            marker = b"signoff worker for" if command == "worker" else b"Uvicorn running"
            text = _read_until(log_path, proc, marker)
        finally:
            _stop(proc)
    text = log_path.read_text()
    assert "hunter2secret" not in text
    assert f"{user}:***@" in text


@pytest.mark.slow
def test_console_script_and_module_are_the_same_cli(workdir: Path) -> None:
    script = Path(sys.executable).with_name("signoff")
    for argv in ([str(script)], [sys.executable, "-m", "signoff"]):
        done = subprocess.run(
            [*argv, "runs", "list", "--db", "sqlite:///absent.db"],
            cwd=workdir,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stderr.startswith("error: no SQLite database at ")
        assert len(done.stderr.splitlines()) == 1
    assert not (workdir / "absent.db").exists()
