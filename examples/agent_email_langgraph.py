"""A LangGraph agent drafts a customer email; a person approves, edits or rejects it
before it is sent.

    python examples/agent_email_langgraph.py              # offline: a scripted model
    AGENT_MODEL=openai:gpt-5-mini python examples/agent_email_langgraph.py

Without `AGENT_MODEL` the model is `ScriptedChatModel` running a small script (no API
key, no network). With it, the agent uses that model through LangChain's
`init_chat_model` (`pip install langchain langchain-openai` and `OPENAI_API_KEY`, or
another provider's package and key). The graph is a plain tool-calling loop: the model
node and a `ToolNode`. `send_email` is a `gated_tool`: the run pauses on an approval
that shows the tool, what it does and the arguments; here a person shortens the body
(an edit), and the email goes out once, as edited.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from signoff import Context, Engine
from signoff.integrations.langgraph import (
    JournaledChatModel,
    ScriptedChatModel,
    gated_tool,
    run_graph,
)

engine = Engine(os.environ.get("SIGNOFF_DATABASE_URL", "sqlite:///signoff.db"), poll_interval=0.02)

CUSTOMERS = {"T-1042": {"name": "Dana Whitfield", "email": "dana@example.com"}}
OUTBOX: list[dict[str, str]] = []  # the "mail server": every email actually sent


def offline_script(messages: list[BaseMessage]) -> AIMessage:
    """A scripted stand-in for a language model: look the ticket up, draft, then report."""
    results = [m for m in messages if isinstance(m, ToolMessage)]
    if not results:
        call = {"name": "lookup_ticket", "args": {"ticket": "T-1042"}, "id": "call-1"}
        return AIMessage("", tool_calls=[call])
    if results[-1].name == "lookup_ticket":
        name, email = str(results[-1].content).split(" <")
        draft = {
            "to": email.rstrip(">"),
            "subject": "Your refund for order ord-88231",
            "body": f"Dear {name}, we are sorry about the delay. "
            "Your refund of 129.00 will reach your card within 5 days.",
        }
        return AIMessage("", tool_calls=[{"name": "send_email", "args": draft, "id": "call-2"}])
    return AIMessage(f"Reported: [{results[-1].status}] {results[-1].content}")


def chat_model() -> BaseChatModel:
    name = os.environ.get("AGENT_MODEL")
    if not name:
        return ScriptedChatModel(script=offline_script, model_name="offline-script")
    # the langchain package is needed only with AGENT_MODEL
    from langchain.chat_models import init_chat_model  # type: ignore[import-not-found]

    model: BaseChatModel = init_chat_model(name)
    return model


@tool
def lookup_ticket(ticket: str) -> str:
    """Look a support ticket up: the customer's name and email."""
    who = CUSTOMERS[ticket]
    return f"{who['name']} <{who['email']}>"


@tool
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email to a customer."""
    OUTBOX.append({"to": to, "subject": subject, "body": body})
    return f"sent to {to}"


# Every tool with an effect is journaled; send_email also waits for a person.
tools = [gated_tool(lookup_ticket, requires_approval=False), gated_tool(send_email)]
model = JournaledChatModel(model=chat_model())
INSTRUCTIONS = SystemMessage("You answer support tickets. Look the ticket up, then email.")


async def call_model(state: MessagesState) -> dict[str, Any]:
    reply = await model.bind_tools(tools).ainvoke([INSTRUCTIONS, *state["messages"]])
    return {"messages": [reply]}


builder = StateGraph(MessagesState)
builder.add_node("agent", call_model)
builder.add_node("tools", ToolNode(tools))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile()


@engine.workflow("answer_ticket_langgraph")
async def answer_ticket(ctx: Context, ticket: str) -> str:
    prompt = HumanMessage(f"Answer support ticket {ticket}.")
    state = await run_graph(ctx, graph, {"messages": [prompt]}, timeout="2d")
    return str(state["messages"][-1].content)


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
