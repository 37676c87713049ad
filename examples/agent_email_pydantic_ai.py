"""A pydantic-ai agent drafts a customer email; a person approves, edits or rejects it
before it is sent.

    python examples/agent_email_pydantic_ai.py            # offline: a scripted model
    AGENT_MODEL=openai:gpt-5-mini python examples/agent_email_pydantic_ai.py

Without `AGENT_MODEL` the model is pydantic-ai's `FunctionModel` running a small script
(no API key, no network). With it, the agent uses that model (its provider's package and
API key must be set up, e.g. `OPENAI_API_KEY`). `send_email` has `requires_approval=True`:
the run pauses on an approval that shows the tool, what it does and the arguments; here
a person shortens the body (an edit), and the email goes out once, as edited.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic_ai import Agent, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel

from signoff import Context, Engine
from signoff.integrations.pydantic_ai import run_agent

engine = Engine(os.environ.get("SIGNOFF_DATABASE_URL", "sqlite:///signoff.db"), poll_interval=0.02)

CUSTOMERS = {"T-1042": {"name": "Dana Whitfield", "email": "dana@example.com"}}
OUTBOX: list[dict[str, str]] = []  # the "mail server": every email actually sent


def offline_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A scripted stand-in for a language model: look the ticket up, draft, then report."""
    returns = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
    if not returns:
        return ModelResponse(parts=[ToolCallPart("lookup_ticket", {"ticket": "T-1042"})])
    if returns[-1].tool_name == "lookup_ticket":
        who = returns[-1].content
        draft = {
            "to": who["email"],  # type: ignore[index]
            "subject": "Your refund for order ord-88231",
            "body": f"Dear {who['name']}, we are sorry about the delay. "  # type: ignore[index]
            "Your refund of 129.00 will reach your card within 5 days.",
        }
        return ModelResponse(parts=[ToolCallPart("send_email", draft)])
    return ModelResponse(parts=[TextPart(f"Reported: {returns[-1].content}")])


def model() -> Model | str:
    return os.environ.get("AGENT_MODEL") or FunctionModel(offline_model)


agent = Agent(
    model(),
    output_type=str,
    instructions="You answer support tickets. Look the ticket up, then email the customer.",
)


@agent.tool_plain
def lookup_ticket(ticket: str) -> dict[str, str]:
    """Look a support ticket up: the customer's name and email."""
    return CUSTOMERS[ticket]


@agent.tool_plain(requires_approval=True)
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email to a customer."""
    OUTBOX.append({"to": to, "subject": subject, "body": body})
    return f"sent to {to}"


@engine.workflow("answer_ticket")
async def answer_ticket(ctx: Context, ticket: str) -> str:
    return await run_agent(ctx, agent, f"Answer support ticket {ticket}.", timeout="2d")


async def demo(url: str) -> dict[str, Any]:
    engine.configure(url=url)
    async with engine:
        run = await engine.start(answer_ticket, "T-1042")
        await engine.settle(run.id)
        [pending] = await engine.pending_approvals(run_id=run.id)
        print(f"waiting for {pending.key}")
        print(f"  {pending.summary}")
        print(f"  proposed: {pending.proposed}")
        shorter = {**pending.proposed, "body": "Dear Dana, your refund of 129.00 is on its way."}
        await engine.edit(run.id, pending.key, shorter, by="alice", reason="shorter")
        result = await engine.result(run.id, timeout=30)
        print(f"agent: {result}")
    print(f"sent: {OUTBOX}")
    return {"result": result, "sent": list(OUTBOX)}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("SIGNOFF_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'agent.db'}"
        asyncio.run(demo(url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
