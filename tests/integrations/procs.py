"""Worker processes of an app of this folder (tests/integrations/agents_app.py unless
told), to kill; the crash tests' helper (tests/acceptance/test_crash.py) pointed at it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff import Engine, RunStatus
from tests.acceptance.test_crash import Workers, wait_until
from tests.integrations import agents_app


class AgentWorkers(Workers):
    """`Workers` of the crash tests running an app of this folder (`module`: the agents
    app by default); the outside world (the model-call counter and the tools' ledger) is
    the test's directory."""

    module: str = agents_app.__name__
    startup = 30.0  # the agent frameworks take long to import

    def command(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", self.module, "worker", str(self.db), str(self.tmp), *extra]


@pytest.fixture
def agent_workers(tmp_path: Path) -> Iterator[AgentWorkers]:
    with AgentWorkers(tmp_path) as w:
        yield w


@pytest.fixture
def agent_client(agent_workers: AgentWorkers) -> Iterator[Engine]:
    """An engine in the test's process with no worker: it starts runs and decides."""
    eng = agents_app.make_engine(f"sqlite:///{agent_workers.db}")
    try:
        yield eng
    finally:
        eng.sync.close()


def wait_for(client: Engine, run_ids: list[str], status: RunStatus, w: AgentWorkers) -> None:
    wait_until(
        lambda: all(client.sync.get_run(r).status is status for r in run_ids),
        30,
        f"{len(run_ids)} runs to be {status}",
        w,
    )
