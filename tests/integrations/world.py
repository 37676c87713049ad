"""What the apps of this folder share: the outside world their workflows write to, and
the worker they run as when a test starts them in a process of their own.

    python -m tests.integrations.APP worker DB DIR

runs a worker of APP's engine on the SQLite file DB until the process is killed. DIR
stands for the outside world, shared by every process of a test (`OUT`; a test that runs
the app in its own process points it at its directory with monkeypatch).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from signoff import Engine
from tests.worker_process import run_worker

OUT = Path(os.environ.get("AGENTS_DIR", "."))


def note(file: str, **entry: Any) -> None:
    """Append one JSON line to a file of the outside world (one write: atomic)."""
    line = json.dumps({**entry, "pid": os.getpid()}) + "\n"
    with open(OUT / file, "a") as f:
        f.write(line)


def read(dir: Path, name: str) -> list[dict[str, Any]]:
    path = dir / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def model_turns(dir: Path, run_id: str) -> list[int]:
    """The turns the model was called for in a run, across all processes, in order."""
    calls = read(dir, "model_calls.jsonl")
    return sorted(c["turn"] for c in calls if c["key"].startswith(run_id + ":"))


def sent(dir: Path) -> list[dict[str, Any]]:
    """The emails the send_email tools sent, in order."""
    return [t for t in read(dir, "tools.jsonl") if t["tool"] == "send_email"]


def serve(make_engine: Callable[[str], Engine], argv: list[str], name: str) -> int:
    """The `worker DB DIR` command of app `name`; its exit code."""
    global OUT
    if len(argv) != 3 or argv[0] != "worker":
        print(f"usage: python -m tests.integrations.{name} worker DB DIR", file=sys.stderr)
        return 2
    db, OUT = Path(argv[1]), Path(argv[2])
    asyncio.run(run_worker(make_engine(f"sqlite:///{db}"), db))
    return 0
