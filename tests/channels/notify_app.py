"""The app the notification crash tests run in worker processes, and kill.

    python -m tests.channels.notify_app DB HOOK_URL [hold]

runs a worker on the SQLite file DB, its webhooks going to HOOK_URL, until killed;
`hold`: it executes runs but delivers nothing (so a kill lands between the change that
wrote a notification and its delivery). Writes `worker-PID.ready` beside DB when up.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

from signoff import Context, Engine
from signoff.channels import Route, WebhookChannel
from tests.worker_process import run_worker

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()  # as tests/channels/receivers.py


def make_engine(url: str, hook_url: str) -> Engine:
    hook = WebhookChannel("hook", url=hook_url, secret=SECRET, timeout=1.0)
    engine = Engine(url, poll_interval=0.02, lease="1s", notifications=[Route(hook)])

    @engine.workflow(name="notify_refund")
    async def notify_refund(ctx: Context, n: int) -> int:
        decision = await ctx.approval("manager", summary=f"Refund {n}", proposed={"n": n})
        return n if decision.approved else -n

    return engine


def main(argv: list[str]) -> int:
    db, hook_url, *rest = argv
    engine = make_engine(f"sqlite:///{db}", hook_url)
    asyncio.run(run_worker(engine, Path(db), hold=rest == ["hold"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
