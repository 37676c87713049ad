"""Gated calls: a function (an AI agent's tool, a risky operation) that a person approves
before it runs, when a predicate says so.

```python
send = signoff.gated(send_payment, requires_approval=lambda to, amount: amount > 1000,
                     describe=lambda to, amount: f"Pay {amount} to {to}")

@engine.workflow()
async def agent(ctx: Context) -> str:
    receipt = await send("bob", 5000)      # pauses for an approval, then runs once
```

Called inside a workflow, the gated callable runs `fn` as a step at once when the
predicate is false. Otherwise it asks for an approval (key `gated:<fn qualname>:<n>`,
the n-th gated call of that function in the run needing approval) whose proposed value
is the call's arguments, `{"args": [...], "kwargs": {...}}` (every argument that can be
passed by name is under "kwargs"), and whose summary is `describe(*args, **kwargs)`.
Approved, it runs the arguments once as a step; edited, it runs the edited arguments.
Any other outcome (rejected, expired, changes requested) raises `CallRejected` carrying
the decision, and `fn` does not run.

An edit is a plain mapping of argument names to values (`{"to": "ann", "amount": 200}`;
positional-only parameters by their names too) or the proposal's own form
`{"args": [...], "kwargs": {...}}`; either way it must still fit `fn`'s signature: no
unknown argument names, every required argument present. One that does not is refused
when the decision is recorded (`engine.edit` raises `InvalidEdit` naming the problem)
and the approval stays pending. The check runs in an engine that has executed a call of
the gated function (the usual case: the app that runs the workflows also takes the
decisions; the engine keeps the check, no process-wide registry); the approval also
carries a JSON Schema of the arguments in both forms (`Gated.schema`, passed as
`schema=`), which every decider checks, also one without the code (the CLI, the HTTP API).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from signoff import context, durations, errors, models, serialization

R = TypeVar("R")


class CallRejected(errors.SignoffError):
    """A gated call was not approved, so it did not run."""

    code = "call_rejected"
    status = 409

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.decision: models.Decision | None = attrs.pop("decision", None)
        self.call: str = attrs.pop("call", "")
        super().__init__(message, **attrs)


class Gated(Generic[R]):
    """The callable `gated()` returns. `await gate(*args, **kwargs)` inside a workflow."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        requires_approval: Callable[..., bool] | bool = True,
        describe: Callable[..., str] | None = None,
        key: str | None = None,
        timeout: durations.Duration | None = None,
    ) -> None:
        if not callable(fn):
            raise errors.InvalidArgument(f"gated() needs a function, not {fn!r:.60}")
        if not (callable(requires_approval) or isinstance(requires_approval, bool)):
            raise errors.InvalidArgument("requires_approval must be a callable or a bool")
        if describe is not None and not callable(describe):
            raise errors.InvalidArgument("describe must be a callable returning a string")
        if timeout is not None:
            durations.to_seconds(timeout, "timeout")
        self.fn = fn
        self.name = context._callable_name(fn)
        self.signature = inspect.signature(fn)
        self.prefix = key if key is not None else f"gated:{self.name}"
        if not isinstance(self.prefix, str) or not self.prefix or len(self.prefix) > 180:
            raise errors.InvalidArgument("key must be a non-empty string of at most 180 chars")
        serialization.to_jsonable(self.prefix, "key")
        self.requires_approval = requires_approval
        self.describe = describe
        self.timeout = timeout
        self.schema = arguments_schema(self.signature)
        self._hints = _param_hints(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<gated {self.name}>"

    async def __call__(self, *args: Any, **kwargs: Any) -> R:
        ctx = context.current()
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise errors.InvalidArgument(f"gated call {self.name}(): {exc}") from None
        if not self._needs_approval(args, kwargs):
            return await self._run(ctx, args, kwargs)
        n = ctx._gated_calls[self.prefix] = ctx._gated_calls.get(self.prefix, 0) + 1
        key = f"{self.prefix}:{n}"
        checks = getattr(ctx._exec, "edit_checks", None)
        if checks is not None:  # the engine running this checks edits of its approvals
            checks[self.prefix] = self.check
        proposed = self.arguments(args, kwargs)
        summary = self._summary(args, kwargs)
        options: dict[str, Any] = {}
        if "schema" in inspect.signature(ctx.approval).parameters:
            options["schema"] = self.schema
        decision = await ctx.approval(
            key, summary=summary, proposed=proposed, timeout=self.timeout, **options
        )
        if decision.status is models.DecisionStatus.APPROVED:
            # The context refused a replay whose proposal differs from the approved one,
            # so these arguments are the approved call; check once more before acting.
            same = context._canonical(proposed, sort_keys=True) == context._canonical(
                decision.value, sort_keys=True
            )
            if not same:
                raise errors.NonDeterminismError(
                    f"gated call {self.name}: the approved arguments differ from this "
                    "call's; nothing was run",
                    run_id=ctx.run_id,
                    key=key,
                )
            return await self._run(ctx, args, kwargs)
        if decision.status is models.DecisionStatus.EDITED:
            new_args, new_kwargs = self._revive(decision.value)
            return await self._run(ctx, new_args, new_kwargs)
        who = f" by {decision.by}" if decision.by else ""
        why = f": {decision.reason}" if decision.reason else ""
        raise CallRejected(
            f"call {summary!r} was not run: approval {key!r} was {decision.status}{who}{why}",
            run_id=ctx.run_id,
            key=key,
            decision=decision,
            call=self.name,
        )

    # the parts ------------------------------------------------------------------------

    def _needs_approval(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if isinstance(self.requires_approval, bool):
            return self.requires_approval
        return bool(self.requires_approval(*args, **kwargs))

    def _summary(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if self.describe is None:
            shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
            return f"{self.name}({', '.join(shown)})"
        text = self.describe(*args, **kwargs)
        if not isinstance(text, str):
            raise errors.InvalidArgument(
                f"describe() of gated {self.name} must return a string, not {type(text).__name__}"
            )
        return text

    async def _run(self, ctx: context.Context, args: Any, kwargs: Any) -> R:
        call = functools.partial(self.fn, *args, **kwargs)
        result: R = await ctx.step(call, name=self.name)
        return result

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call as JSON: `{"args": [...], "kwargs": {...}}`, every argument that can
        be passed by name under "kwargs"."""
        bound = self.signature.bind(*args, **kwargs)
        positional: list[Any] = []
        named: dict[str, Any] = {}
        params = self.signature.parameters.values()
        var_used = any(p.kind is p.VAR_POSITIONAL and bound.arguments.get(p.name) for p in params)
        for p in params:
            if p.name not in bound.arguments:
                continue
            value = bound.arguments[p.name]
            if p.kind is p.POSITIONAL_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and var_used):
                positional.append(value)
            elif p.kind is p.VAR_POSITIONAL:
                positional.extend(value)
            elif p.kind is p.VAR_KEYWORD:
                named.update(value)
            else:
                named[p.name] = value
        data = {"args": positional, "kwargs": named}
        jsonable: dict[str, Any] = serialization.to_jsonable(
            data, where=f"the arguments of gated call {self.name}"
        )
        return jsonable

    def check(self, value: Any) -> tuple[list[Any], dict[str, Any]]:
        """Check edited arguments against `fn`'s signature; raise `InvalidEdit`. The edit
        is `{"args": [...], "kwargs": {...}}` or a plain mapping of argument names to
        values (`{"to": "ann", "amount": 200}`); returns it as `(args, kwargs)`."""
        if _explicit(value):
            args, kwargs = value["args"], value["kwargs"]
        elif isinstance(value, dict) and {"args", "kwargs"} <= set(value) - self._named():
            raise _invalid_edit(
                f'the edited call to {self.name} must be {{"args": [...], "kwargs": '
                f"{{...}}}} or a mapping of argument names to values, not {value!r:.80}"
            )
        elif isinstance(value, dict):
            args, kwargs = self._from_names(value)
        else:
            raise _invalid_edit(
                f"the edited call to {self.name} must be a mapping of argument names to "
                f'values or {{"args": [...], "kwargs": {{...}}}}, not {value!r:.80}'
            )
        params = self.signature.parameters.values()
        expected = ", ".join(self.signature.parameters)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            names = {p.name for p in params if p.kind is not p.POSITIONAL_ONLY}
            unknown = sorted(set(kwargs) - names)
            if unknown:
                raise _invalid_edit(
                    f"the edited call to {self.name}({expected}) has unknown argument "
                    f"names: {', '.join(map(repr, unknown))}; keep the function's names"
                )
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise _invalid_edit(
                f"the edited call does not fit {self.name}({expected}): {exc}; keep the "
                "argument names and every required argument"
            ) from None
        return list(args), dict(kwargs)

    def _named(self) -> set[str]:
        return {p.name for p in self.signature.parameters.values() if p.kind is not p.VAR_KEYWORD}

    def _from_names(self, value: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """A plain mapping as a call: positional-only parameters named in it become the
        leading positional arguments (in order, without gaps); the rest are by name."""
        args: list[Any] = []
        kwargs = dict(value)
        for p in self.signature.parameters.values():
            if p.kind is p.VAR_POSITIONAL and p.name in kwargs:
                raise _invalid_edit(
                    f"the edited call to {self.name} names *{p.name}; give variadic "
                    'positional arguments in the {"args": [...], "kwargs": {...}} form'
                )
            if p.kind is not p.POSITIONAL_ONLY:
                continue
            if p.name in kwargs:
                if len(args) < list(self.signature.parameters).index(p.name):
                    raise _invalid_edit(
                        f"the edited call to {self.name} gives {p.name!r} but not the "
                        "positional-only arguments before it"
                    )
                args.append(kwargs.pop(p.name))
        return args, kwargs

    def _revive(self, value: Any) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = self.check(value)
        bound = self.signature.bind(*args, **kwargs)
        for name, raw in list(bound.arguments.items()):
            hint = self._hints.get(name)
            kind = self.signature.parameters[name].kind
            if hint is not None and kind not in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            ):
                bound.arguments[name] = serialization.revive(raw, hint)
        return list(bound.args), dict(bound.kwargs)


def gated(
    fn: Callable[..., Any],
    *,
    requires_approval: Callable[..., bool] | bool = True,
    describe: Callable[..., str] | None = None,
    key: str | None = None,
    timeout: durations.Duration | None = None,
) -> Gated[Any]:
    """Wrap `fn` so that, called inside a workflow, it runs only after a person approves
    the call when `requires_approval(*args, **kwargs)` is true (always, by default).

    `describe(*args, **kwargs)` is the summary shown to the approver (default: the call
    written out). `key` replaces the approval key prefix `gated:<fn qualname>`; the n-th
    call needing approval in a run gets `<prefix>:<n>`. `timeout` is the approval's.
    Both callables run again on every replay: keep them free of side effects and of
    anything that changes between replays.
    """
    return Gated(
        fn, requires_approval=requires_approval, describe=describe, key=key, timeout=timeout
    )


def arguments_schema(signature: inspect.Signature) -> dict[str, Any]:
    """A JSON Schema of a call's arguments: the `{"args", "kwargs"}` form, or a plain
    mapping of argument names to values."""
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind is p.POSITIONAL_ONLY]
    var_pos = any(p.kind is p.VAR_POSITIONAL for p in params)
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    args: dict[str, Any] = {
        "type": "array",
        "minItems": sum(1 for p in positional if p.default is p.empty),
    }
    if not var_pos:
        args["maxItems"] = len(positional)
    required = [p.name for p in named if p.default is p.empty]
    if var_pos:  # then leading positional-or-keyword arguments may sit in "args"
        required = [p.name for p in named if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    kwargs: dict[str, Any] = {
        "type": "object",
        "properties": {p.name: {} for p in named},
        "required": required,
        "additionalProperties": var_kw,
    }
    explicit = {
        "type": "object",
        "properties": {"args": args, "kwargs": kwargs},
        "required": ["args", "kwargs"],
        "additionalProperties": False,
    }
    by_name = [*positional, *named]
    plain = {
        "type": "object",
        "properties": {p.name: {} for p in by_name},
        "required": [p.name for p in by_name if p.default is p.empty],
        "additionalProperties": var_kw,
    }
    return {"anyOf": [explicit, plain]}


def _explicit(value: Any) -> bool:
    """Whether an edit is in the `{"args": [...], "kwargs": {...}}` form (which wins over
    a plain mapping for a function whose parameters are named `args` and `kwargs`)."""
    return (
        isinstance(value, dict)
        and set(value) == {"args", "kwargs"}
        and isinstance(value["args"], list)
        and isinstance(value["kwargs"], dict)
    )


def _invalid_edit(message: str) -> errors.InvalidEdit:
    return errors.InvalidEdit(message, errors=[message])


def _param_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = getattr(fn, "func", fn)
    try:
        return typing.get_type_hints(target)
    except Exception:
        return {}
