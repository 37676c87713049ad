"""The app the agent integration tests run in worker processes, and kill.

    python tests/integrations/agents_app.py worker DB DIR

runs a worker on the SQLite file DB until the process is killed. DIR stands for the
outside world, shared by every process of a test: `model_calls.jsonl` gets a line per
call of a model (which turn of which run, from which process, what it answered) and
`tools.jsonl` a line per run of a tool body. The models answer differently on every call
(a fresh nonce in each email body): a model called twice for one turn would show, both in
the counter and in what the tools ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from pydantic_ai import Agent, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import signoff
from signoff import Context, Engine
from signoff.integrations import pydantic_ai as sp

LEASE = "1s"
POLL = 0.02
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


CUSTOMERS = {"dana": "dana@example.com", "lee": "lee@example.com"}


# pydantic-ai --------------------------------------------------------------------------


def support_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A scripted model: look the customer up, write to them (two emails if asked for
    two), then report what became of the emails. Every answer carries a fresh nonce."""
    turn = sum(1 for m in messages if isinstance(m, ModelResponse)) + 1
    nonce = uuid.uuid4().hex[:8]
    prompt = str(messages[0].parts[-1].content)  # type: ignore[union-attr]
    returns = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
    if turn == 1:
        parts: list[Any] = [ToolCallPart("lookup_customer", {"name": "dana"})]
    elif turn == 2:
        email = str(returns[-1].content)
        parts = [
            ToolCallPart(
                "send_email",
                {"to": email, "subject": "Your refund", "body": f"Refund on its way ({nonce})"},
            )
        ]
        if "two" in prompt:
            parts.append(
                ToolCallPart(
                    "send_email",
                    {"to": CUSTOMERS["lee"], "subject": "Hello", "body": f"Hi Lee ({nonce})"},
                )
            )
    else:
        seen = "; ".join(str(r.content) for r in returns if r.tool_name == "send_email")
        parts = [TextPart(f"done: {seen}")]
    response = ModelResponse(parts=parts, model_name="scripted-support")
    note(
        "model_calls.jsonl",
        toolkit="pydantic_ai",
        key=signoff.idempotency_key(),
        turn=turn,
        nonce=nonce,
    )
    return response


support_agent = Agent(FunctionModel(support_model), output_type=str, name="support")


@support_agent.tool_plain
def lookup_customer(name: str) -> str:
    """Find a customer's email address."""
    note("tools.jsonl", tool="lookup_customer", name=name)
    return CUSTOMERS[name]


@support_agent.tool_plain(requires_approval=True)
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email to a customer."""
    note("tools.jsonl", tool="send_email", to=to, subject=subject, body=body)
    return f"sent to {to}: {body}"


async def support_pydantic_ai(ctx: Context, prompt: str) -> str:
    return await sp.run_agent(ctx, support_agent, prompt)


# the worker -------------------------------------------------------------------------


def make_engine(url: str) -> Engine:
    eng = Engine(url, lease=LEASE, poll_interval=POLL)
    eng.workflow("support_pydantic_ai")(support_pydantic_ai)
    return eng


async def _work(eng: Engine, ready: Path) -> None:
    await eng.start_worker()
    ready.write_text(str(os.getpid()))
    await asyncio.Event().wait()  # until killed


def main(argv: list[str]) -> int:
    global OUT
    if len(argv) != 3 or argv[0] != "worker":
        print("usage: agents_app.py worker DB DIR", file=sys.stderr)
        return 2
    db, OUT = Path(argv[1]), Path(argv[2])
    ready = db.with_name(f"worker-{os.getpid()}.ready")
    asyncio.run(_work(make_engine(f"sqlite:///{db}"), ready))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
