"""The app the LangGraph integration tests run in worker processes, and kill.

    python -m tests.integrations.langgraph_app worker DB DIR

runs a worker on the SQLite file DB until the process is killed. DIR stands for the
outside world, shared by every process of a test: `model_calls.jsonl` gets a line per
call of the model (which turn of which run, from which process, what it answered) and
`tools.jsonl` a line per run of a tool body. The model answers differently on every call
(a fresh nonce in each email body): a model called twice for one turn would show, both in
the counter and in what the tools ran.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any, TypedDict

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import interrupt

import signoff
from signoff import Context, Engine
from signoff.integrations import langgraph as sl
from tests.integrations.world import note, serve

LEASE = "1s"
POLL = 0.02
CUSTOMERS = {"dana": "dana@example.com", "lee": "lee@example.com"}


# the agent: a scripted model, a lookup (journaled only) and send_email (approved) -----


def support_script(messages: list[BaseMessage]) -> AIMessage:
    """Look the customer up, write to them (two emails if asked for two), then report
    what became of the emails. Every answer carries a fresh nonce."""
    turn = sum(1 for m in messages if isinstance(m, AIMessage)) + 1
    nonce = uuid.uuid4().hex[:8]
    prompt = str(next(m for m in messages if isinstance(m, HumanMessage)).content)
    results = [m for m in messages if isinstance(m, ToolMessage)]
    if turn == 1:
        calls = [{"name": "lookup_customer", "args": {"name": "dana"}, "id": "call_look"}]
    elif turn == 2:
        email = str(results[-1].content)
        body = f"Refund on its way ({nonce})"
        calls = [
            {
                "name": "send_email",
                "args": {"to": email, "subject": "Your refund", "body": body},
                "id": "call_dana",
            }
        ]
        if "two" in prompt:
            lee = {"to": CUSTOMERS["lee"], "subject": "Hello", "body": f"Hi Lee ({nonce})"}
            calls.append({"name": "send_email", "args": lee, "id": "call_lee"})
    else:
        calls = []
    if calls:
        answer = AIMessage("", tool_calls=calls, id=f"turn-{turn}")
    else:
        seen = "; ".join(f"[{m.status}] {m.content}" for m in results if m.name == "send_email")
        answer = AIMessage(f"done: {seen}", id=f"turn-{turn}")
    note("model_calls.jsonl", key=signoff.idempotency_key(), turn=turn, nonce=nonce)
    return answer


@tool
def lookup_customer(name: str) -> str:
    """Find a customer's email address."""
    note("tools.jsonl", tool="lookup_customer", name=name)
    return CUSTOMERS[name]


@tool
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email to a customer."""
    note("tools.jsonl", tool="send_email", to=to, subject=subject, body=body)
    return f"sent to {to}: {body}"


model = sl.JournaledChatModel(
    model=sl.ScriptedChatModel(script=support_script, model_name="scripted-support")
)
tools = [sl.gated_tool(lookup_customer, requires_approval=False), sl.gated_tool(send_email)]


async def agent(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await model.bind_tools(tools).ainvoke(state["messages"])]}


_builder = StateGraph(MessagesState)
_builder.add_node("agent", agent)
_builder.add_node("tools", ToolNode(tools))
_builder.add_edge(START, "agent")
_builder.add_conditional_edges("agent", tools_condition)
_builder.add_edge("tools", "agent")
support_graph = _builder.compile()


async def support_langgraph(ctx: Context, prompt: str) -> str:
    state = await sl.run_graph(ctx, support_graph, {"messages": [HumanMessage(prompt)]})
    return str(state["messages"][-1].content)


# a graph with interrupt(): a draft reviewed by a person, then sent --------------------


class Draft(TypedDict, total=False):
    to: str
    body: str
    outcome: str
    cc: str


def write_draft(state: Draft) -> Draft:
    return {"body": f"Dear {state['to']}, your refund is on its way."}


def review(state: Draft) -> Draft:
    answer = interrupt(
        {"summary": f"Send this email to {state['to']}?", "proposed": {"body": state["body"]}}
    )
    if not answer["approved"]:
        return {"outcome": f"not sent: {answer['by']}: {answer['reason']}"}
    return {"body": answer["value"]["body"], "outcome": "approved"}


def ask_cc(state: Draft) -> Draft:
    answer = interrupt({"key": "cc", "question": "Who should be copied?", "proposed": "nobody"})
    return {"cc": answer["value"]}


def send(state: Draft) -> Draft:
    if state.get("outcome") == "approved":
        note("tools.jsonl", tool="send", to=state["to"], body=state["body"])
        return {"outcome": f"sent: {state['body']}"}
    return {}


_review = StateGraph(Draft)
_review.add_node("write_draft", write_draft)
_review.add_node("review", review)
_review.add_node("ask_cc", ask_cc)
_review.add_node("send", send)
_review.add_edge(START, "write_draft")
_review.add_edge("write_draft", "review")
_review.add_edge("write_draft", "ask_cc")
_review.add_edge(["review", "ask_cc"], "send")
_review.add_edge("send", END)
review_graph = _review.compile()


async def review_langgraph(ctx: Context, to: str) -> dict[str, Any]:
    state = await sl.run_graph(ctx, review_graph, {"to": to})
    return {"outcome": state["outcome"], "cc": state.get("cc")}


# the worker -------------------------------------------------------------------------


def make_engine(url: str) -> Engine:
    eng = Engine(url, lease=LEASE, poll_interval=POLL)
    eng.workflow("support_langgraph")(support_langgraph)
    eng.workflow("review_langgraph")(review_langgraph)
    return eng


if __name__ == "__main__":
    sys.exit(serve(make_engine, sys.argv[1:], "langgraph_app"))
