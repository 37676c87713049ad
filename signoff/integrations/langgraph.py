"""LangGraph and LangChain inside signoff workflows: durable model calls, tool calls that a
person approves, and graphs whose `interrupt()` waits for a person
(`pip install 'signoff[langgraph]'`).

```python
from signoff.integrations.langgraph import JournaledChatModel, gated_tool, run_graph

model = JournaledChatModel(model=ChatOpenAI(model="gpt-5"))
send = gated_tool(send_email)                   # a LangChain tool: each call is approved
graph = build_agent_graph(model.bind_tools([send]), ToolNode([send]))

@engine.workflow()
async def support(ctx: Context, ticket: str) -> str:
    state = await run_graph(ctx, graph, {"messages": [("user", ticket)]})
    return state["messages"][-1].content
```

The graph runs inside the workflow: a replay runs it again from the top, and everything
that would come out differently is journaled.

- `JournaledChatModel` records each model response as a step (LangChain's own message
  serialization), so a resumed agent never calls the model again for a turn it took.
- `gated_tool(tool)` asks for an approval before each call, keyed `tool:<the model's
  tool-call id>`, whose proposed value is the call's arguments (edited as a plain mapping,
  checked against the tool's JSON schema, unknown names refused) and whose summary names
  the tool, what it does, the model and the call id. Approved, the tool runs once, as a
  step, with the recorded arguments; edited, with the edited ones; rejected, expired or
  sent back, it does not run and the model reads a `ToolMessage` with `status="error"`
  naming who refused and why. Several calls in one response (LangGraph's `ToolNode` runs
  them together) are asked together: one park, each decided on its own.
  `gated_tool(tool, requires_approval=False)` only journals the tool: wrap every tool
  with side effects, or a replay runs it again.
- `run_graph(ctx, graph, input)` runs a graph that calls `interrupt()`: each interrupt
  becomes an approval (all of one step asked together), and the graph resumes with
  `Command(resume=<the decision as a dict>)`. The graph's checkpointer is an in-memory
  one made afresh for each execution; the database holds what it needs.
- `ask_human()` is a tool the model calls to ask a person (`ctx.ask`).
- `ScriptedChatModel` is an offline chat model that supports `bind_tools`, for tests
  and examples.

What runs is what was approved: the arguments come from the journaled model response and
the recorded decision, so a model answering differently on a replay cannot change them.
Use the async API (`ainvoke`, `astream`): workflows are async.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ToolCall,
    ToolMessage,
    messages_from_dict,
    messages_to_dict,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from signoff import context, durations, errors, models
from signoff.gated import CallRejected
from signoff.integrations import _tool_approvals as shared

__all__ = [
    "GatedTool",
    "JournaledChatModel",
    "ScriptedChatModel",
    "ask_human",
    "decision_payload",
    "gated_tool",
    "refusal",
    "run_graph",
]

MODEL_STEP = "langchain.model"
TOOL_STEP = "langchain.tool"


# per execution of a run: which model asked for which call, approval keys used ---------


@dataclass
class _RunNotes:
    models: dict[str, str] = field(default_factory=dict)  # tool-call id -> model name
    keys: dict[str, int] = field(default_factory=dict)


# Keyed by the Context of one execution (a replay gets a new one, and the notes with it).
_notes: weakref.WeakKeyDictionary[context.Context, _RunNotes] = weakref.WeakKeyDictionary()


def _notes_of(ctx: context.Context) -> _RunNotes:
    notes = _notes.get(ctx)
    if notes is None:
        notes = _notes[ctx] = _RunNotes()
    return notes


_key = shared.key  # `prefix:<id>`, `#n` for an id met before in the run


# the model -------------------------------------------------------------------------------


class JournaledChatModel(BaseChatModel):
    """A chat model whose responses are journaled: inside a workflow each call is a step
    (named `langchain.model`), so on replay the recorded `AIMessage` is returned and
    `model` is not called. `bind_tools` binds the wrapped model and stays journaled."""

    model: Runnable[LanguageModelInput, BaseMessage]
    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _llm_type(self) -> str:
        return "signoff-journaled"

    @property
    def model_name(self) -> str:
        inner = getattr(self.model, "bound", self.model)  # a RunnableBinding of bind_tools
        return str(getattr(inner, "model_name", None) or getattr(inner, "model", None) or "")

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        if not isinstance(self.model, BaseChatModel):
            raise errors.InvalidArgument(
                "bind_tools: the wrapped model is already bound; wrap the chat model itself"
            )
        bound = self.model.bind_tools(tools, tool_choice=tool_choice, **kwargs)
        return JournaledChatModel(model=bound)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise errors.InvalidArgument(
            "a JournaledChatModel is called with the async API inside a workflow "
            "(ainvoke, astream), not invoke"
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        ctx = context.current()
        if stop is not None:
            kwargs["stop"] = stop
        config: RunnableConfig = {}  # callbacks of this call stay outside the step
        recorded = await ctx.step(
            _invoke_model, self.model, messages, config, kwargs, name=MODEL_STEP
        )
        [message] = messages_from_dict([recorded])
        if isinstance(message, AIMessage):
            name = _model_name(message) or self.model_name
            for call in message.tool_calls:
                if call.get("id"):
                    _notes_of(ctx).models[str(call["id"])] = name
        return ChatResult(generations=[ChatGeneration(message=message)])


async def _invoke_model(
    model: Runnable[LanguageModelInput, BaseMessage],
    messages: list[BaseMessage],
    config: RunnableConfig,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """The step: one call of the model, its response as JSON."""
    message = await model.ainvoke(messages, config, **kwargs)
    [dumped] = messages_to_dict([message])
    jsonable: dict[str, Any] = to_jsonable_python(dumped, fallback=str)
    return jsonable


def _model_name(message: AIMessage) -> str:
    meta = message.response_metadata or {}
    return str(meta.get("model_name") or meta.get("model") or "")


class ScriptedChatModel(BaseChatModel):
    """An offline chat model for tests and examples: `script(messages)` returns the next
    `AIMessage` (tool calls included). LangChain's fake chat models lack `bind_tools`;
    this one accepts any tools (the script decides what to call)."""

    script: Callable[[list[BaseMessage]], AIMessage]
    name_of_model: str = Field(default="scripted", alias="model_name")
    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    @property
    def _llm_type(self) -> str:
        return "signoff-scripted"

    @property
    def model_name(self) -> str:
        return self.name_of_model

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self.script(messages)
        if not message.response_metadata.get("model_name"):
            message.response_metadata = {**message.response_metadata, "model_name": self.model_name}
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, **kwargs)


# tools -------------------------------------------------------------------------------------

Describe = Callable[[ToolCall, BaseTool, str], str]


class GatedTool(BaseTool):
    """A LangChain tool whose calls a person approves first (made by `gated_tool`)."""

    tool: BaseTool
    requires_approval: Callable[[dict[str, Any]], bool] | bool = True
    approvers: list[str] | None = None
    timeout: durations.Duration | None = None
    describe: Describe | None = None
    key_prefix: str = "tool"
    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        raise errors.InvalidArgument(
            f"gated tool {self.name!r} runs inside a workflow with the async API (ainvoke)"
        )

    async def ainvoke(
        self,
        input: str | dict[str, Any] | ToolCall,
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Any:
        ctx = context.current()
        notes = _notes_of(ctx)
        call = _as_call(self.name, input, notes.keys)
        shown, hidden = self._split(call["args"])
        if not self._needs_approval(shown):
            return await self._execute(ctx, call, shown, hidden, config)
        key = _key(self.key_prefix, str(call["id"]), notes.keys)
        model_name = notes.models.get(str(call["id"]), "")
        summary = (self.describe or _summary)(call, self.tool, model_name)
        decision = await ctx.approval(
            key,
            summary=summary,
            proposed=shown,
            schema=self.edit_schema(),
            approvers=self.approvers,
            timeout=self.timeout,
            metadata=shared.metadata(self.name, self.tool.description, model_name, str(call["id"])),
        )
        if decision.approved:  # approved: the recorded proposal; edited: the edit
            if not isinstance(decision.value, dict):  # pragma: no cover - the schema holds
                raise errors.InvalidEdit(f"the arguments of {self.name} must be a mapping")
            return await self._execute(ctx, call, decision.value, hidden, config)
        text = refusal(decision)
        if input_is_call(input):
            return ToolMessage(text, tool_call_id=call["id"], name=self.name, status="error")
        raise CallRejected(text, run_id=ctx.run_id, key=key, decision=decision, call=self.name)

    def edit_schema(self) -> dict[str, Any]:
        """The JSON Schema an edit must fit: the tool's arguments, no others."""
        schema = _call_schema(self.tool)
        schema.setdefault("additionalProperties", False)
        return schema

    def _needs_approval(self, args: dict[str, Any]) -> bool:
        if isinstance(self.requires_approval, bool):
            return self.requires_approval
        return bool(self.requires_approval(args))

    def _split(self, args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The arguments the model chose, and those the graph injected (state, store, the
        call id): only the former are shown and may be edited."""
        names = set(_call_schema(self.tool).get("properties", {}))
        shown = {k: v for k, v in args.items() if k in names}
        return shown, {k: v for k, v in args.items() if k not in names}

    async def _execute(
        self,
        ctx: context.Context,
        call: ToolCall,
        args: dict[str, Any],
        hidden: dict[str, Any],
        config: RunnableConfig | None,
    ) -> Any:
        run = ToolCall(name=call["name"], args={**hidden, **args}, id=call["id"], type="tool_call")
        recorded = await ctx.step(
            _run_tool, self.tool, run, config, name=f"{TOOL_STEP}:{self.name}"
        )
        [message] = messages_from_dict([recorded])
        return message if call.get("type") == "tool_call" else message.content


def input_is_call(input: Any) -> bool:
    return isinstance(input, dict) and input.get("type") == "tool_call" and "id" in input


def _as_call(name: str, input: Any, keys: dict[str, int]) -> ToolCall:
    if input_is_call(input):
        return ToolCall(
            name=input["name"], args=dict(input["args"]), id=input["id"], type="tool_call"
        )
    if not isinstance(input, dict):
        raise errors.InvalidArgument(
            f"tool {name!r} takes a mapping of arguments, not {input!r:.60}"
        )
    n = keys[f"direct:{name}"] = keys.get(f"direct:{name}", 0) + 1
    return ToolCall(name=name, args=dict(input), id=f"{name}:{n}")


async def _run_tool(
    tool: BaseTool, call: ToolCall, config: RunnableConfig | None
) -> dict[str, Any]:
    """The step: one run of the tool, its `ToolMessage` as JSON."""
    result = await tool.ainvoke(call, config)
    if not isinstance(result, ToolMessage):
        raise errors.InvalidArgument(
            f"gated tool {tool.name!r} returned {type(result).__name__}; a gated tool must "
            "return content (a Command cannot be journaled)"
        )
    [dumped] = messages_to_dict([result])
    jsonable: dict[str, Any] = to_jsonable_python(dumped, fallback=str)
    return jsonable


def _call_schema(tool: BaseTool) -> dict[str, Any]:
    schema = tool.tool_call_schema
    if isinstance(schema, dict):
        return dict(schema)
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    return {"type": "object", "properties": {}}  # pragma: no cover - LangChain's own types


def _summary(call: ToolCall, tool: BaseTool, model_name: str) -> str:
    return shared.summary(call["name"], tool.description, model_name, str(call["id"]))


refusal = shared.refusal  # what the model reads when a person did not approve a call


def gated_tool(
    tool: BaseTool,
    *,
    requires_approval: Callable[[dict[str, Any]], bool] | bool = True,
    approvers: Sequence[str] | None = None,
    timeout: durations.Duration | None = None,
    describe: Describe | None = None,
    key_prefix: str = "tool",
) -> GatedTool:
    """`tool`, with each call approved by a person first when `requires_approval(args)`
    (always, by default) and run as a step either way. `approvers` (anyone when None) and
    `timeout` are the approval's; `describe(call, tool, model_name)` replaces the summary.
    Give each agent of one workflow its own `key_prefix` if their models reuse call ids."""
    if not isinstance(tool, BaseTool):
        raise errors.InvalidArgument(f"gated_tool() needs a LangChain tool, not {tool!r:.60}")
    if timeout is not None:
        durations.to_seconds(timeout, "timeout")
    return GatedTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        tool=tool,
        requires_approval=requires_approval,
        approvers=None if approvers is None else list(approvers),
        timeout=timeout,
        describe=describe,
        key_prefix=key_prefix,
    )


# asking a person ---------------------------------------------------------------------------


class _Question(BaseModel):
    question: str = Field(description="The question for the person, with what they need to know.")


class AskHuman(BaseTool):
    """A tool the model calls to ask a person a question (made by `ask_human`)."""

    to: list[str] | None = None
    timeout: durations.Duration | None = None
    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        raise errors.InvalidArgument(f"tool {self.name!r} runs inside a workflow (ainvoke)")

    async def ainvoke(
        self,
        input: str | dict[str, Any] | ToolCall,
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Any:
        ctx = context.current()
        notes = _notes_of(ctx)
        call = _as_call(self.name, input, notes.keys)
        question = str(call["args"].get("question", ""))
        key = _key("tool.ask", str(call["id"]), notes.keys)
        try:
            answer = await ctx.ask(question, key=key, to=self.to, timeout=self.timeout)
        except (errors.QuestionDeclined, errors.WaitTimeout) as exc:
            if not input_is_call(input):
                raise
            return ToolMessage(str(exc), tool_call_id=call["id"], name=self.name, status="error")
        if not input_is_call(input):
            return answer
        text = answer if isinstance(answer, str) else str(to_jsonable_python(answer))
        return ToolMessage(text, tool_call_id=call["id"], name=self.name)


def ask_human(
    *,
    to: str | Sequence[str] | None = None,
    timeout: durations.Duration | None = None,
    name: str = "ask_human",
    description: str = (
        "Ask a person a question and wait for the answer. Use it when you need a fact, "
        "a preference or a decision that only a person can give."
    ),
) -> AskHuman:
    """A tool the model calls to ask a person; the answer (text) is the tool's result.
    Each call is `ctx.ask(question, to=to, timeout=timeout)` keyed `tool.ask:<call id>`;
    declining, or nobody answering in time, reaches the model as an error `ToolMessage`
    with who and why."""
    people = [to] if isinstance(to, str) else (None if to is None else list(to))
    return AskHuman(
        name=name, description=description, args_schema=_Question, to=people, timeout=timeout
    )


# graphs with interrupt() -------------------------------------------------------------------


def decision_payload(decision: models.Decision) -> dict[str, Any]:
    """A decision as the value `interrupt()` returns under `run_graph`: `approved`,
    `status`, `value` (the proposal, or the edit), `by`, `reason`."""
    return {
        "approved": decision.approved,
        "status": decision.status.value,
        "value": decision.value,
        "by": decision.by,
        "reason": decision.reason,
    }


async def run_graph(
    ctx: context.Context,
    graph: Any,
    input: Any,
    *,
    config: RunnableConfig | None = None,
    approvers: Sequence[str] | None = None,
    timeout: durations.Duration | None = None,
    key_prefix: str = "interrupt",
    resume: Callable[[models.Decision], Any] = decision_payload,
    max_legs: int = 50,
) -> Any:
    """Run the compiled LangGraph `graph` on `input` in the workflow of `ctx`; return its
    output (the final state).

    Each `interrupt(value)` becomes an approval, those of one graph step asked together,
    keyed `<key_prefix>:<node>:<n>` (the n-th interrupt of that node) or
    `<key_prefix>:<value["key"]>`. A dict `value` may carry `summary` (or `description`
    or `question`), `proposed` (the value a person sees and may edit; default: the whole
    `value`), `schema` and `approvers`; other values are shown as they are. The graph
    resumes with `Command(resume=resume(decision))`, by default `decision_payload`.
    Use `JournaledChatModel` and `gated_tool` inside the graph: it runs again from the
    top on every replay, from the journal.
    """
    if isinstance(graph, StateGraph):
        graph = graph.compile()
    if not isinstance(graph, Pregel):
        raise errors.InvalidArgument(
            f"run_graph() needs a LangGraph graph (StateGraph or compiled), not {graph!r:.60}"
        )
    checkpointed = graph.copy(update={"checkpointer": InMemorySaver()})
    base: RunnableConfig = dict(config or {})  # type: ignore[assignment]
    thread = f"signoff:{ctx.run_id}:{key_prefix}"
    base["configurable"] = {**base.get("configurable", {}), "thread_id": thread}
    counts: dict[str, int] = {}
    value: Any = input
    for _ in range(max_legs):
        output = await checkpointed.ainvoke(value, base)
        snapshot = await checkpointed.aget_state(base)
        asked = [(task.name, i) for task in snapshot.tasks for i in task.interrupts]
        if not asked:
            return output
        waits = [
            _interrupt_approval(ctx, node, intr.value, key_prefix, counts, approvers, timeout)
            for node, intr in asked
        ]
        decisions: list[models.Decision] = await ctx.all_of(*waits)
        value = Command(
            resume={intr.id: resume(d) for (_, intr), d in zip(asked, decisions, strict=True)}
        )
    raise errors.InvalidArgument(
        f"run_graph: the graph was interrupted {max_legs} times without finishing; raise "
        "max_legs if that is expected",
        run_id=ctx.run_id,
    )


def _interrupt_approval(
    ctx: context.Context,
    node: str,
    value: Any,
    prefix: str,
    counts: dict[str, int],
    approvers: Sequence[str] | None,
    timeout: durations.Duration | None,
) -> Any:
    spec = value if isinstance(value, dict) else {}
    if isinstance(spec.get("key"), str):
        key = _key(prefix, spec["key"], counts)
    else:
        n = counts[node] = counts.get(node, 0) + 1
        key = f"{prefix}:{node}:{n}"
    text = spec.get("summary") or spec.get("description") or spec.get("question")
    if not isinstance(text, str):
        text = value if isinstance(value, str) else f"{node}: {value!r:.160}"
    return ctx.approval(
        key,
        summary=text,
        proposed=spec.get("proposed", value),
        schema=spec.get("schema"),
        approvers=spec.get("approvers", approvers),
        timeout=spec.get("timeout", timeout),
    )
