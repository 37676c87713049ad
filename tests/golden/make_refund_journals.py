"""Record the golden journals of the refund example (run once; commit the JSON files).

.venv/bin/python tests/golden/make_refund_journals.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1]))

from signoff.testing import export_journal  # noqa: E402


async def record(tmp: str) -> None:
    os.environ["SIGNOFF_DATABASE_URL"] = f"sqlite:///{tmp}/golden.db"
    os.environ["REFUND_LEDGER"] = f"{tmp}/ledger.db"
    from examples import refund_review

    engine = refund_review.engine
    async with engine:
        waiting = await engine.start("refund_review", "T-1042")
        await engine.settle(waiting.id)
        (HERE / "refund_waiting.json").write_text(
            json.dumps(await export_journal(engine, waiting.id), indent=1) + "\n"
        )
        done = await engine.start("refund_review", "T-1042")
        await engine.approve(done.id, "manager", by="alice", reason="golden")
        await engine.result(done.id, timeout=10)
        (HERE / "refund_completed.json").write_text(
            json.dumps(await export_journal(engine, done.id), indent=1) + "\n"
        )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(record(tmp))
