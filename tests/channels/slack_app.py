"""The app the Slack crash tests run in worker processes, and kill.

    python tests/channels/slack_app.py DB SLACK_API_URL [hold]

runs a worker on the SQLite file DB, its Slack channel talking to SLACK_API_URL (the
test's stand-in), until killed; `hold`: it executes runs but delivers nothing. Writes
`worker-PID.ready` beside DB when up.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from signoff import Context, Engine
from signoff.channels import Contacts, Route, SlackChannel

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # as tests/channels/slack_standin.py
TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"

CONTACTS = Contacts(addresses={"alice": {"slack": "UALICE"}})


def make_engine(url: str, api_url: str) -> Engine:
    slack = SlackChannel(
        "slack", token=TOKEN, signing_secret=SIGNING_SECRET, base_url=api_url, timeout=1.0
    )
    engine = Engine(
        url, poll_interval=0.02, lease="1s", directory=CONTACTS, notifications=[Route(slack)]
    )

    @engine.workflow(name="slack_refund")
    async def slack_refund(ctx: Context, n: int) -> int:
        decision = await ctx.approval(
            "manager", summary=f"Refund {n}", proposed={"n": n}, approvers=["alice"]
        )
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
    db, api_url, *rest = argv
    ready = Path(db).with_name(f"worker-{os.getpid()}.ready")
    asyncio.run(_work(make_engine(f"sqlite:///{db}", api_url), ready, rest == ["hold"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
