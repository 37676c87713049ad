"""An OpenAI Agents SDK agent drafts a customer email; a person approves or rejects it
before it is sent.

    python examples/agent_email_openai_agents.py          # offline: a scripted model
    OPENAI_API_KEY=sk-... AGENT_MODEL=gpt-5-mini python examples/agent_email_openai_agents.py

Without `AGENT_MODEL` the model is a small scripted `Model` (no API key, no network); with
it, the agent uses that OpenAI model. `send_email` has `needs_approval=True`: the run
pauses on an approval that shows the tool, what it does and the arguments. The SDK
cannot run a call with changed arguments, so an edit is refused (`EditNotAllowed`); the
person approves, and the email goes out once.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from agents import Agent, Model, RunConfig, function_tool
from agents.items import ModelResponse
from agents.testing.model import assistant_message, function_call
from agents.usage import Usage

from signoff import Context, EditNotAllowed, Engine
from signoff.integrations.openai_agents import run_agent

engine = Engine(os.environ.get("SIGNOFF_DATABASE_URL", "sqlite:///signoff.db"), poll_interval=0.02)

CUSTOMERS = {"T-1042": {"name": "Dana Whitfield", "email": "dana@example.com"}}
OUTBOX: list[dict[str, str]] = []  # the "mail server": every email actually sent


class OfflineModel(Model):
    """A scripted stand-in for a language model: look the ticket up, draft, then report."""

    async def get_response(self, system_instructions: Any, input: Any, *a: Any, **k: Any) -> Any:
        items = input if isinstance(input, list) else []
        outputs = [i for i in items if i.get("type") == "function_call_output"]
        if not outputs:
            out = [function_call("lookup_ticket", {"ticket": "T-1042"}, call_id="call-1")]
        elif len(outputs) == 1:
            draft = {
                "to": "dana@example.com",
                "subject": "Your refund for order ord-88231",
                "body": "Dear Dana Whitfield, your refund of 129.00 is on its way.",
            }
            out = [function_call("send_email", draft, call_id="call-2")]
        else:
            out = [assistant_message(f"Reported: {outputs[-1]['output']}")]
        return ModelResponse(output=out, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the offline model does not stream")


@function_tool
def lookup_ticket(ticket: str) -> dict[str, str]:
    """Look a support ticket up: the customer's name and email."""
    return CUSTOMERS[ticket]


@function_tool(needs_approval=True)
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email to a customer."""
    OUTBOX.append({"to": to, "subject": subject, "body": body})
    return f"sent to {to}"


agent = Agent(
    name="support",
    instructions="You answer support tickets. Look the ticket up, then email the customer.",
    tools=[lookup_ticket, send_email],
    model=os.environ.get("AGENT_MODEL") or OfflineModel(),
)


@engine.workflow("answer_ticket")
async def answer_ticket(ctx: Context, ticket: str) -> str:
    config = RunConfig(tracing_disabled=not os.environ.get("OPENAI_API_KEY"))
    output = await run_agent(ctx, agent, f"Answer support ticket {ticket}.", run_config=config)
    return str(output)


async def demo(url: str) -> dict[str, Any]:
    engine.configure(url=url)
    async with engine:
        run = await engine.start(answer_ticket, "T-1042")
        await engine.settle(run.id)
        [pending] = await engine.pending_approvals(run_id=run.id)
        print(f"waiting for {pending.key}")
        print(f"  {pending.summary}")
        print(f"  proposed: {pending.proposed}")
        try:
            await engine.edit(run.id, pending.key, {**pending.proposed, "body": "Hi"}, by="alice")
        except EditNotAllowed as exc:
            print(f"edit refused: {exc}")
        await engine.approve(run.id, pending.key, by="alice", reason="reads well")
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
