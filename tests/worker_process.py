"""The worker of a test app running in a process of its own, which a test kills.

    python -m tests.PACKAGE.APP ...   (from the repository's root: `ROOT`)

A test app's `main` opens its engine and calls `run_worker`: the worker starts, the
file `worker-PID.ready` beside the database says so, and it runs until killed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from signoff import Engine

ROOT = Path(__file__).resolve().parents[1]  # where `python -m tests....` finds `tests`


async def run_worker(engine: Engine, db: Path, *, hold: bool = False) -> None:
    """Run `engine`'s worker until the process is killed (`hold`: without delivering
    notifications, so that a kill lands between a change and its delivery)."""
    await engine.start_worker()
    if hold:
        await engine._stop_deliverer()
    db.with_name(f"worker-{os.getpid()}.ready").write_text(str(os.getpid()))
    await asyncio.Event().wait()
