"""A real `signoff serve` process (uvicorn) driven by the sync Client, with an SSE read."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import signoff
from tests.ports import free_port
from tests.server.apps import make_engine

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


@dataclass
class Server:
    url: str
    db: str
    tokens: dict[str, str]


def _tokens(db: str) -> dict[str, str]:
    async def create() -> dict[str, str]:
        engine = make_engine(db)
        try:
            out = {}
            for name, scopes in [
                ("alice", ["read", "decide"]),
                ("starter", ["read", "start"]),
                ("reader", ["read"]),
                ("admin", ["admin"]),
            ]:
                out[name] = (await engine.access.create_token(name, scopes))[1]
            return out
        finally:
            await engine.close()

    return asyncio.run(create())


@contextlib.contextmanager
def serving(tmp_path: Path, *command: str) -> Iterator[Server]:
    """A server process started with `command` (port appended) on a fresh database."""
    db = f"sqlite:///{tmp_path / 'served.db'}"
    tokens = _tokens(db)
    port = free_port()
    env = {**os.environ, "SIGNOFF_DATABASE_URL": db, "SIGNOFF_LINK_SECRET": "k" * 32,
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    log_path = tmp_path / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", *command, "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log_path.read_text())
            time.sleep(0.05)
        yield Server(url, db, tokens)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    text = log_path.read_text()
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in text, text


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    command = ("signoff", "serve", "tests.server.serve_app:engine", "--log-level", "warning")
    with serving(tmp_path, *command) as s:
        yield s


def test_sync_client_against_a_real_server(server: Server) -> None:
    starter = signoff.Client(server.url, server.tokens["starter"])
    with starter, signoff.Client(server.url, server.tokens["alice"]) as client:
        run = starter.start("refund", "ord-1", amount=70)
        deadline = time.monotonic() + 10
        while not client.pending_approvals(run_id=run.id):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(signoff.RunNotFound):
            client.approve("nope", "manager")
        with pytest.raises(signoff.ApprovalNotFound):
            client.approve(run.id, "nobody")
        decision = client.edit(run.id, "manager", {"amount": 50}, idempotency_key="e1")
        assert decision.by == "alice" and decision.value == {"amount": 50}
        assert client.edit(run.id, "manager", {"amount": 50}, idempotency_key="e1") == decision
        with pytest.raises(signoff.DecisionConflict) as exc:
            client.reject(run.id, "manager")
        assert exc.value.decision is not None and exc.value.decision.status == "edited"
        assert client.result(run.id, timeout=10)["value"] == {"amount": 50}
        runs = client.list_runs(limit=10)
        assert [r.id for r in runs] == [run.id] and runs.next_cursor is None
        assert client.history(run.id)[-1].type == "run_completed"
    with (
        signoff.Client(server.url, server.tokens["reader"]) as reader,
        pytest.raises(signoff.ApiError) as denied,
    ):
        reader.start("refund", "x")
    assert denied.value.http_status == 403


def test_sse_over_a_real_connection(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.tokens['alice']}"}
    starter = signoff.Client(server.url, server.tokens["starter"])
    with starter, signoff.Client(server.url, server.tokens["alice"]) as client:
        run = starter.start("refund", "ord-2")
        events: list[str] = []
        with httpx.stream("GET", f"{server.url}/runs/{run.id}/stream", headers=headers,
                          timeout=10) as res:  # fmt: skip
            assert res.headers["content-type"].startswith("text/event-stream")
            for line in res.iter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
                    if events[-1] == "waiting_for_input":
                        client.approve(run.id, "manager")
        # the stream ended by itself when the run completed
        assert events == ["step_completed", "waiting_for_input", "input_resolved",
                          "run_completed"]  # fmt: skip


def test_link_tokens_never_reach_the_access_log(tmp_path: Path) -> None:
    """Plain uvicorn, access log on: opening and using a link logs no token."""
    command = ("uvicorn", "tests.server.apps:build_app", "--factory", "--log-level", "info")
    with serving(tmp_path, *command) as server:
        starter = signoff.Client(server.url, server.tokens["starter"])
        with starter, signoff.Client(server.url, server.tokens["admin"]) as admin:
            run = starter.start("refund", "ord-9")
            deadline = time.monotonic() + 10
            while not admin.pending_approvals(run_id=run.id):
                assert time.monotonic() < deadline
                time.sleep(0.02)
        made = httpx.post(
            f"{server.url}/runs/{run.id}/approvals/manager/links",
            json={"approver": "erin"},
            headers={"Authorization": f"Bearer {server.tokens['admin']}"},
        ).json()
        page = httpx.get(made["url"])
        assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
        done = httpx.post(made["url"], data={"action": "approve"})
        assert done.status_code == 200 and "approved by erin" in done.text
    log = (tmp_path / "server.log").read_text()
    assert made["token"] not in log and made["token"].split(".")[0] not in log
    assert log.count("/links/[redacted]") >= 2, log


def test_the_client_example_in_docs_http_md_runs(server: Server) -> None:
    """The block as written, against a real server: one token starts, another decides."""
    text = (ROOT / "docs" / "http.md").read_text()
    block = re.findall(r"```python\n(.*?)```", text.split("## Python client")[1], re.S)[0]

    async def tokens() -> dict[str, str]:
        engine = make_engine(server.db)
        try:
            return {
                "SAM_TOKEN": (await engine.access.create_token("sam", ["read", "start"]))[1],
                "ALICE_TOKEN": (await engine.access.create_token("alice", ["decide"]))[1],
            }
        finally:
            await engine.close()

    env = {**os.environ, "SIGNOFF_URL": server.url, **asyncio.run(tokens())}
    done = subprocess.run(
        [sys.executable, "-c", block], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "approved by alice" in done.stdout
    assert "'status': 'approved', 'by': 'alice'" in done.stdout
