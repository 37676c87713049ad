"""pydantic-ai agents inside signoff workflows: durable model calls, tool calls that a
person approves (`pip install 'signoff[pydantic-ai]'`).

```python
from pydantic_ai import Agent
from signoff.integrations.pydantic_ai import run_agent

agent = Agent("openai:gpt-5", output_type=str)

@agent.tool_plain(requires_approval=True)
def send_email(to: str, subject: str, body: str) -> str:
    ...

@engine.workflow()
async def support(ctx: Context, ticket: str) -> str:
    return await run_agent(ctx, agent, f"Answer ticket {ticket}")
```

`run_agent` runs the agent with every model response recorded as a step (so a resumed
run never asks the model again for a turn it already took) and every tool execution
recorded as a step (a tool that ran is not run again on replay). When the model calls
tools that need approval (`requires_approval=True`, or a tool raising `ApprovalRequired`),
the agent run stops with pydantic-ai's `DeferredToolRequests`; each call becomes an
approval, all opened together (one park), keyed `tool:<the model's tool-call id>`, whose
proposed value is the call's arguments and whose edit schema is the tool's JSON schema.
The summary names the tool, what it does, the model and the call id. Then:

- approved: `ToolApproved()`, the tool runs once with the model's arguments;
- edited: `ToolApproved(override_args=<the edited arguments>)`, it runs once with those;
- rejected, expired or changes requested: `ToolDenied(<who and why>)`, the tool does not
  run and the model reads the refusal and goes on.

What runs is what was approved: the arguments come from the recorded model response, so a
model that would answer differently on replay cannot change them.

`ask_human()` is a tool the model calls to ask a person a question (`ctx.ask`); the
answer is the tool's result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, Tool
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.capabilities.abstract import ValidatedToolArgs, WrapToolExecuteHandler
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry, ToolFailed
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    ToolCallPart,
)
from pydantic_ai.models import (
    CompletedStreamedResponse,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import (
    DeferredToolApprovalResult,
    RunContext,
    ToolApproved,
    ToolDefinition,
    ToolDenied,
)
from pydantic_core import to_jsonable_python

from signoff import context, durations, errors, models
from signoff.integrations import _tool_approvals as shared

__all__ = ["JournaledModel", "ask_human", "run_agent", "verdict"]

OutputT = TypeVar("OutputT")

MODEL_STEP = "pydantic_ai.model_request"
TOOL_STEP = "pydantic_ai.tool"


class JournaledModel(WrapperModel):
    """A model whose responses are journaled: inside a workflow each `request` is a step,
    so on replay the recorded `ModelResponse` is returned and the model is not called.

    `run_agent` wraps the agent's model in one; wrap a model yourself to run an agent
    with `agent.run(...)` directly in a workflow (its tools then run again on replay;
    prefer `run_agent`). A streamed request is journaled as the whole response, replayed
    to the stream's consumer as events. Responses are stored with pydantic-ai's own
    message serialization (`ModelMessagesTypeAdapter`).
    """

    def __init__(
        self, wrapped: Model | str, *, tools: dict[str, ToolDefinition] | None = None
    ) -> None:
        super().__init__(wrapped)
        # the tools of the latest request, by name (the approvals' schemas and descriptions)
        self.tools: dict[str, ToolDefinition] = {} if tools is None else tools

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        ctx = context.current()
        for tool in model_request_parameters.function_tools:
            self.tools[tool.name] = tool
        recorded = await ctx.step(
            _model_request,
            self.wrapped,
            messages,
            model_settings,
            model_request_parameters,
            name=MODEL_STEP,
        )
        return _response(recorded)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        response = await self.request(messages, model_settings, model_request_parameters)
        yield CompletedStreamedResponse(
            response, model_request_parameters=model_request_parameters, replay_events=True
        )


async def _model_request(
    model: Model,
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    parameters: ModelRequestParameters,
) -> list[Any]:
    """The step: one call of the model, its response as JSON."""
    response = await model.request(messages, model_settings, parameters)
    dumped: list[Any] = ModelMessagesTypeAdapter.dump_python([response], mode="json")
    return dumped


def _response(recorded: list[Any]) -> ModelResponse:
    (message,) = ModelMessagesTypeAdapter.validate_python(recorded)
    if not isinstance(message, ModelResponse):  # pragma: no cover - we wrote a response
        raise errors.InvalidArgument(f"the journal holds no model response: {recorded!r:.80}")
    return message


@dataclass(init=False)
class _Journal(AbstractCapability[Any]):
    """Per `run_agent` call: journals model requests (`JournaledModel`) and tool runs."""

    ctx: context.Context
    tools: dict[str, ToolDefinition]

    def __init__(self, ctx: context.Context) -> None:
        self.ctx = ctx
        self.tools = {}

    def get_wrapper_model(self, model: Model) -> Model | None:
        if isinstance(model, JournaledModel):
            return None
        return JournaledModel(model, tools=self.tools)

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        outcome = await self.ctx.step(
            _execute_tool, handler, args, name=f"{TOOL_STEP}:{call.tool_name}"
        )
        return _revive_outcome(outcome)


async def _execute_tool(handler: WrapToolExecuteHandler, args: ValidatedToolArgs) -> dict[str, Any]:
    """The step: one run of a tool. pydantic-ai's control flow (a retry asked of the
    model, a deferral) is recorded as an outcome, not as a failed step."""
    try:
        result = await handler(args)
    except ModelRetry as exc:
        return {"retry": exc.message}
    except ToolFailed as exc:
        return {"failed": exc.message}
    except ApprovalRequired as exc:
        return {"deferred": "approval", "metadata": exc.metadata}
    except CallDeferred as exc:
        return {"deferred": exc.kind, "metadata": exc.metadata}
    return {"result": to_jsonable_python(result)}


def _revive_outcome(outcome: dict[str, Any]) -> Any:
    if "retry" in outcome:
        raise ModelRetry(outcome["retry"])
    if "failed" in outcome:
        raise ToolFailed(outcome["failed"])
    if outcome.get("deferred") == "approval":
        raise ApprovalRequired(outcome.get("metadata"))
    if "deferred" in outcome:
        kind: Literal["external", "question"] = outcome["deferred"]
        raise CallDeferred(outcome.get("metadata"), kind=kind)
    return outcome["result"]


# run_agent ---------------------------------------------------------------------------


Describe = Callable[[ToolCallPart, ToolDefinition | None, str], str]


async def run_agent(
    ctx: context.Context,
    agent: Agent[Any, OutputT],
    prompt: str | None = None,
    *,
    deps: Any = None,
    message_history: Sequence[ModelMessage] | None = None,
    approvers: Sequence[str] | None = None,
    timeout: durations.Duration | None = None,
    describe: Describe | None = None,
    key_prefix: str = "tool",
    max_legs: int = 50,
) -> OutputT:
    """Run `agent` on `prompt` durably in the workflow of `ctx` and return its output.

    Model responses and tool runs are journaled; tool calls needing approval become
    approvals (see the module's docstring) asked of `approvers` (anyone when None) with
    `timeout`. `describe(call, tool_definition, model_name)` replaces the summary shown to
    the approver. `key_prefix` starts the approval keys (`tool:<call id>`): give each
    `run_agent` call of one workflow its own if their models reuse call ids. Each
    approval round is a new agent run continuing the message history; `max_legs` bounds
    them.
    """
    journal = _Journal(ctx)
    extra: dict[str, Any] = {}
    if not _allows_deferred(agent.output_type):
        extra["output_type"] = [agent.output_type, DeferredToolRequests]
    history = list(message_history) if message_history is not None else None
    results: DeferredToolResults | None = None
    keys: dict[str, int] = {}
    # One tool call at a time: every step of the run then has its place in the journal
    # whatever the timing of the tools.
    with agent.parallel_tool_call_execution_mode("sequential"):
        for _ in range(max_legs):
            result = await agent.run(
                prompt if results is None else None,
                message_history=history,
                deferred_tool_results=results,
                deps=deps,
                run_id=f"signoff-{ctx.uuid()}",
                capabilities=[journal],
                **extra,
            )
            output = result.output
            if not isinstance(output, DeferredToolRequests):
                final: OutputT = output
                return final
            history = result.all_messages()
            results = await _decide(
                ctx,
                output,
                history,
                journal.tools,
                approvers=approvers,
                timeout=timeout,
                describe=describe,
                key_prefix=key_prefix,
                keys=keys,
            )
    raise errors.InvalidArgument(
        f"run_agent: the agent asked for approvals {max_legs} times without finishing; "
        "raise max_legs if that is expected",
        run_id=ctx.run_id,
    )


def _allows_deferred(spec: Any) -> bool:
    if spec is DeferredToolRequests:
        return True
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        return any(_allows_deferred(s) for s in spec)
    return False


async def _decide(
    ctx: context.Context,
    requests: DeferredToolRequests,
    history: list[ModelMessage],
    tools: dict[str, ToolDefinition],
    *,
    approvers: Sequence[str] | None,
    timeout: durations.Duration | None,
    describe: Describe | None,
    key_prefix: str,
    keys: dict[str, int],
) -> DeferredToolResults:
    """Ask for every deferred call at once (one park) and map the answers."""
    asks = []
    for call in requests.approvals:
        tool = tools.get(call.tool_name)
        model_name = _model_name(history, call.tool_call_id)
        if describe is not None:
            summary = describe(call, tool, model_name)
        else:
            description = None if tool is None else tool.description
            summary = shared.summary(call.tool_name, description, model_name, call.tool_call_id)
        asks.append(
            ctx.approval(
                shared.key(key_prefix, call.tool_call_id, keys),
                summary=summary,
                proposed=call.args_as_dict(),
                schema=None if tool is None else tool.parameters_json_schema,
                approvers=approvers,
                timeout=timeout,
                metadata=shared.metadata(
                    call.tool_name,
                    None if tool is None else tool.description,
                    model_name,
                    call.tool_call_id,
                ),
            )
        )
    for call in requests.calls:
        if requests.kind(call.tool_call_id) != "question":
            raise errors.InvalidArgument(
                f"run_agent: tool {call.tool_name!r} deferred its call for external execution, "
                "which run_agent does not do; run it as an ordinary tool",
                run_id=ctx.run_id,
            )
        meta = requests.metadata.get(call.tool_call_id) or {}
        asks.append(_ask(ctx, call, meta, shared.key(f"{key_prefix}.ask", call.tool_call_id, keys)))
    answers = await ctx.all_of(*asks)
    approvals: dict[str, bool | DeferredToolApprovalResult] = {}
    calls: dict[str, Any] = {}
    for call, answer in zip([*requests.approvals, *requests.calls], answers, strict=True):
        if isinstance(answer, models.Decision):
            approvals[call.tool_call_id] = verdict(answer)
        else:
            calls[call.tool_call_id] = answer
    return DeferredToolResults(approvals=approvals, calls=calls)


def verdict(decision: models.Decision) -> ToolApproved | ToolDenied:
    """A person's decision as pydantic-ai's answer to a tool call needing approval."""
    if decision.status is models.DecisionStatus.APPROVED:
        return ToolApproved()
    if decision.status is models.DecisionStatus.EDITED:
        return ToolApproved(override_args=dict(decision.value))
    return ToolDenied(shared.refusal(decision))


def _model_name(history: list[ModelMessage], tool_call_id: str) -> str:
    for message in reversed(history):
        if isinstance(message, ModelResponse) and any(
            isinstance(p, ToolCallPart) and p.tool_call_id == tool_call_id for p in message.parts
        ):
            return message.model_name or ""
    return ""


# asking a person --------------------------------------------------------------------


def ask_human(
    *,
    to: str | Sequence[str] | None = None,
    timeout: durations.Duration | None = None,
    name: str = "ask_human",
) -> Tool[Any]:
    """A tool the model calls to ask a person a question; the answer (text) is the tool's
    result. Under `run_agent` the question is `ctx.ask(question, to=to, timeout=timeout)`,
    keyed `tool.ask:<call id>`; a person declining, or nobody answering in time, reaches the
    model as the tool's failure with the reason."""
    where = {"to": [to] if isinstance(to, str) else list(to or []), "timeout": timeout}

    async def ask(question: str) -> str:
        """Ask a person a question and wait for the answer. Use it when you need a fact
        or a choice only a person can give."""
        raise CallDeferred({"question": question, **where}, kind="question")

    return Tool(ask, name=name, takes_ctx=False)


async def _ask(ctx: context.Context, call: ToolCallPart, meta: dict[str, Any], key: str) -> Any:
    question = str(meta.get("question") or call.args_as_dict().get("question") or "")
    try:
        return await ctx.ask(
            question,
            key=key,
            to=meta.get("to") or None,
            timeout=meta.get("timeout"),
        )
    except (errors.QuestionDeclined, errors.WaitTimeout) as exc:
        return ToolFailed(str(exc))
