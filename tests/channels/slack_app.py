"""The app the Slack crash tests run in worker processes, and kill.

    python -m tests.channels.slack_app DB SLACK_API_URL [hold]

runs a worker on the SQLite file DB, its Slack channel talking to SLACK_API_URL (the
test's stand-in), until killed; `hold`: it executes runs but delivers nothing. Writes
`worker-PID.ready` beside DB when up.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from signoff import Context, Engine
from signoff.channels import Contacts, Route, SlackChannel
from tests.worker_process import run_worker

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


def main(argv: list[str]) -> int:
    db, api_url, *rest = argv
    engine = make_engine(f"sqlite:///{db}", api_url)
    asyncio.run(run_worker(engine, Path(db), hold=rest == ["hold"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
