"""The app the agent integration tests run in worker processes, and kill.

    python -m tests.integrations.agents_app worker DB DIR

runs a worker on the SQLite file DB until the process is killed. DIR stands for the
outside world, shared by every process of a test: `model_calls.jsonl` gets a line per
call of a model (which turn of which run, from which process, what it answered) and
`tools.jsonl` a line per run of a tool body. The models answer differently on every call
(a fresh nonce in each email body): a model called twice for one turn would show, both in
the counter and in what the tools ran.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import agents
from agents.items import ModelResponse as AgentsResponse
from agents.testing.model import assistant_message, function_call
from agents.usage import Usage
from pydantic_ai import Agent, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import signoff
from signoff import Context, Engine
from signoff.integrations import openai_agents as so
from signoff.integrations import pydantic_ai as sp
from tests.integrations.world import note, serve

LEASE = "1s"
POLL = 0.02


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


# OpenAI Agents SDK -------------------------------------------------------------------


class SupportModel(agents.Model):
    """The same script as `support_model`, as an Agents SDK model."""

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kw: Any
    ) -> AgentsResponse:
        items = input if isinstance(input, list) else [{"role": "user", "content": input}]
        prompt = str(items[0].get("content"))
        calls = {i["call_id"]: i["name"] for i in items if i.get("type") == "function_call"}
        outputs = [
            (calls[i["call_id"]], i["output"])
            for i in items
            if i.get("type") == "function_call_output"
        ]
        sent = [str(out) for name, out in outputs if name == "send_email"]
        nonce = uuid.uuid4().hex[:8]
        if not outputs:
            turn, out = (
                1,
                [function_call("lookup_customer", {"name": "dana"}, call_id=f"call-{nonce}-1")],
            )
        elif not sent:
            turn = 2
            email = str(outputs[-1][1])
            body = {"to": email, "subject": "Your refund", "body": f"Refund on its way ({nonce})"}
            out = [function_call("send_email", body, call_id=f"call-{nonce}-2")]
            if "two" in prompt:
                lee = {"to": CUSTOMERS["lee"], "subject": "Hello", "body": f"Hi Lee ({nonce})"}
                out.append(function_call("send_email", lee, call_id=f"call-{nonce}-3"))
        else:
            turn, out = 3, [assistant_message("done: " + "; ".join(sent))]
        note(
            "model_calls.jsonl",
            toolkit="openai_agents",
            key=signoff.idempotency_key(),
            turn=turn,
            nonce=nonce,
        )
        return AgentsResponse(output=out, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kw: Any) -> Any:
        raise NotImplementedError


@agents.function_tool(name_override="lookup_customer")
def lookup_customer_sdk(name: str) -> str:
    """Find a customer's email address."""
    note("tools.jsonl", tool="lookup_customer", name=name)
    return CUSTOMERS[name]


@agents.function_tool(name_override="send_email", needs_approval=True)
def send_email_sdk(to: str, subject: str, body: str) -> str:
    """Send an email to a customer."""
    note("tools.jsonl", tool="send_email", to=to, subject=subject, body=body)
    return f"sent to {to}: {body}"


sdk_agent = agents.Agent(
    name="support",
    instructions="Help the customer.",
    tools=[lookup_customer_sdk, send_email_sdk],
    model=SupportModel(),
)


async def support_openai_agents(ctx: Context, prompt: str) -> str:
    config = agents.RunConfig(tracing_disabled=True)
    return str(await so.run_agent(ctx, sdk_agent, prompt, run_config=config))


# the worker -------------------------------------------------------------------------


def make_engine(url: str) -> Engine:
    eng = Engine(url, lease=LEASE, poll_interval=POLL)
    eng.workflow("support_pydantic_ai")(support_pydantic_ai)
    eng.workflow("support_openai_agents")(support_openai_agents)
    return eng


if __name__ == "__main__":
    sys.exit(serve(make_engine, sys.argv[1:], "agents_app"))
