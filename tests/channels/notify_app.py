"""The app the notification crash tests run in worker processes, and kill.

    python tests/channels/notify_app.py DB HOOK_URL [hold]

runs a worker on the SQLite file DB, its webhooks going to HOOK_URL, until killed;
`hold`: it executes runs but delivers nothing (so a kill lands between the change that
wrote a notification and its delivery). Writes `worker-PID.ready` beside DB when up.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path

from signoff import Context, Engine
from signoff.channels import Route, WebhookChannel

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()  # as tests/channels/receivers.py


def make_engine(url: str, hook_url: str) -> Engine:
    hook = WebhookChannel("hook", url=hook_url, secret=SECRET, timeout=1.0)
    engine = Engine(url, poll_interval=0.02, lease="1s", notifications=[Route(hook)])

    @engine.workflow(name="notify_refund")
    async def notify_refund(ctx: Context, n: int) -> int:
        decision = await ctx.approval("manager", summary=f"Refund {n}", proposed={"n": n})
        return n if decision.approved else -n

    return engine


async def _work(engine: Engine, ready: Path, hold: bool) -> None:
    await engine.start_worker()
    if hold:
        await engine._stop_deliverer()
    ready.write_text(str(os.getpid()))
    while True:
        await asyncio.sleep(3600)


def main(argv: list[str]) -> int:
    db, hook_url, *rest = argv
    ready = Path(db).with_name(f"worker-{os.getpid()}.ready")
    asyncio.run(_work(make_engine(f"sqlite:///{db}", hook_url), ready, rest == ["hold"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
