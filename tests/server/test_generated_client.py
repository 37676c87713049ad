"""A client generated from /openapi.json by a standard generator reads well and works.

`openapi-python-client` turns the spec into a package; its modules are named after our
operation ids (`start_run`, `list_approvals`, `decide`), and the test drives a real server
process with it: start a run, list the approver's inbox, decide with the digest shown.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from signoff import Engine
from signoff.server.app import create_app
from tests.server.test_process import Server, serving

pytestmark = pytest.mark.slow

GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[ModuleType]:
    if not GENERATOR.exists():
        pytest.fail("openapi-python-client is a dev dependency: run scripts/test to install it")
    spec = create_app(Engine(f"sqlite:///{tmp_path / 'spec.db'}"), run_worker=False).openapi()
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [str(GENERATOR), "generate", "--path", "spec.json", "--output-path", "signoff_api",
         "--meta", "none"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (tmp_path / "signoff_api" / "client.py").exists(), done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("signoff_api")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("signoff_api")]:
            del sys.modules[name]
        shutil.rmtree(tmp_path / "signoff_api")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    command = ("signoff", "serve", "tests.server.serve_app:engine", "--log-level", "warning")
    with serving(tmp_path, *command) as s:
        yield s


def _module(pkg: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{pkg.__name__}.{name}")


def test_a_generated_client_starts_lists_and_decides(generated: ModuleType, server: Server) -> None:
    api = Path(generated.__file__).parent / "api"
    operations = sorted(p.stem for p in api.glob("*/*.py") if p.stem != "__init__")
    assert {"start_run", "list_approvals", "get_approval", "decide"} <= set(operations)
    assert not [op for op in operations if op.endswith("_post") or "__" in op]

    client_mod = _module(generated, "client")
    start_run = _module(generated, "api.runs.start_run")
    list_approvals = _module(generated, "api.approvals.list_approvals")
    decide = _module(generated, "api.approvals.decide")
    models = _module(generated, "models")

    starter = client_mod.AuthenticatedClient(server.url, token=server.tokens["starter"])
    alice = client_mod.AuthenticatedClient(server.url, token=server.tokens["alice"])
    with starter, alice:
        _start_list_decide(starter, alice, models, start_run, list_approvals, decide)


def _start_list_decide(
    starter: Any, alice: Any, models: Any, start_run: Any, list_approvals: Any, decide: Any
) -> None:
    body = models.StartRun(workflow="refund", args=["ord-9", 40])
    run = start_run.sync(client=starter, body=body)
    assert run.status.value in ("pending", "running", "waiting")

    deadline = time.monotonic() + 10
    while not (page := list_approvals.sync(client=alice, run_id=run.id)).items:
        assert time.monotonic() < deadline, "the approval never appeared"
        time.sleep(0.05)
    [approval] = page.items
    assert approval.key == "manager" and approval.digest

    decision = decide.sync(
        run.id,
        "manager",
        client=alice,
        body=models.Decide(action=models.DecideAction.APPROVE, digest=approval.digest),
    )
    assert decision.status.value == "approved" and decision.by == "alice"
