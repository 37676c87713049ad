"""Workflow arguments checked at `engine.start`, before anything is recorded.

A run whose arguments do not fit its workflow would be recorded, then fail on the worker
(a `TypeError`, or a value that cannot be revived): dead on arrival. `check` binds the
arguments, as they will be stored (plain JSON), to the workflow's signature and validates
each against its annotation the way the worker will read it:

- annotations the worker revives (dataclasses, pydantic models, datetimes, Decimals,
  UUIDs, enums and containers of them) are validated exactly as the worker revives them
  (pydantic, lax: `"12.50"` is a `Decimal`), so what passes here revives there;
- other annotations (`str`, `int`, `list[str]`, `Literal[...]`, ...) receive the stored
  value as it is, so it must already have that type: validated strictly as JSON (`"5"` is
  not an `int`; `5` is a `float`).

Unannotated parameters, `Any`, and annotations pydantic cannot describe are not checked.
`check_definition` refuses, at decoration, a workflow that no run could call.
"""

from __future__ import annotations

import enum
import functools
import inspect
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any

import pydantic

from signoff import errors, serialization

RESERVED = ("run_id", "requested_by")
"""`engine.start`'s own keyword parameters: a workflow argument cannot be passed by them."""

_MAX_DETAILS = 5


def check_definition(workflow: str, fn: Callable[..., Any]) -> None:
    """Refuse a workflow function that cannot take the context, or whose keyword-only
    parameters can never be passed because `engine.start` keeps their names."""
    params = list(_signature(fn).parameters.values())
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    ):
        raise errors.InvalidArgument(
            f"workflow {workflow!r} must take the context as its first parameter: "
            f"async def {getattr(fn, '__name__', 'workflow')}(ctx: Context, ...)",
            workflow=workflow,
        )
    for p in params[1:]:
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name in RESERVED:
            raise errors.InvalidArgument(
                f"workflow {workflow!r} has a keyword-only parameter {p.name!r}, which "
                f"engine.start keeps for itself ({p.name}= of the run); rename it",
                workflow=workflow,
                field=p.name,
            )


def check(
    workflow: str,
    fn: Callable[..., Any],
    hints: Mapping[str, Any],
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    taken: Collection[str] = (),
) -> None:
    """Raise `InvalidArgument` (with `field` and `workflow`) when `args` and `kwargs`, as
    stored (plain JSON), do not fit `fn(ctx, *args, **kwargs)` and its annotations `hints`.
    `taken`: the names of `engine.start`'s own options that were given (`run_id`, ...)."""
    sig, params = _parameters(fn)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as exc:
        field, message = _binding_problem(params, args, kwargs, taken, exc)
        raise errors.InvalidArgument(
            f"workflow {workflow!r}: {message}", workflow=workflow, field=field
        ) from None
    for name, value in bound.arguments.items():
        kind, hint = params[name].kind, hints.get(name)
        if kind is inspect.Parameter.VAR_POSITIONAL:
            for i, item in enumerate(value):
                _check_value(workflow, f"{name}[{i}]", item, hint)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            for key, item in value.items():
                _check_value(workflow, key, item, hint)
        else:
            _check_value(workflow, name, value, hint)


@functools.lru_cache(maxsize=1024)
def _parameters(fn: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, inspect.Parameter]]:
    """The signature without the context, and its parameters (a start checks them all)."""
    params = dict(list(_signature(fn).parameters.items())[1:])
    return inspect.Signature(list(params.values())), params


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidArgument(f"{fn!r:.60} has no signature to check: {exc}") from None


def _binding_problem(
    params: Mapping[str, inspect.Parameter],
    args: list[Any],
    kwargs: Mapping[str, Any],
    taken: Collection[str],
    exc: TypeError,
) -> tuple[str | None, str]:
    """The field and a readable reason why the arguments do not bind."""
    kinds = {p.kind for p in params.values()}
    takes = ", ".join(params) or "no arguments"
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        for name in kwargs:
            p = params.get(name)
            if p is None or p.kind is inspect.Parameter.POSITIONAL_ONLY:
                return name, f"unexpected argument {name!r} (it takes: {takes})"
    positional = [
        p
        for p in params.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if inspect.Parameter.VAR_POSITIONAL not in kinds and len(args) > len(positional):
        return None, (
            f"{len(args)} positional arguments given, but it takes at most {len(positional)} "
            f"(it takes: {takes})"
        )
    for i, p in enumerate(positional[: len(args)]):
        if p.name in kwargs:
            return p.name, f"argument {p.name!r} given twice (position {i} and by name)"
    for name, p in params.items():
        required = p.default is inspect.Parameter.empty and p.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )
        supplied = name in kwargs or (p in positional and positional.index(p) < len(args))
        if required and not supplied:
            if name in RESERVED and name in taken:
                return name, (
                    f"it has a parameter named {name!r}, but {name}= is engine.start's own "
                    f"option; pass the workflow's {name!r} positionally, or rename it"
                )
            return name, f"missing argument {name!r} (it takes: {takes})"
    return None, str(exc)  # pragma: no cover - every TypeError of bind is covered above


_PLAIN: dict[Any, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}


def _check_value(workflow: str, field: str, value: Any, hint: Any) -> None:
    if hint is None or hint is Any:
        return
    plain = _PLAIN.get(hint) if isinstance(hint, type) else None
    if plain is not None and type(value) in plain:  # the common case, without pydantic
        return
    if _has_members(hint):  # Literal[Tier.GOLD]: pydantic cannot read it from JSON
        return
    try:
        revived = serialization.needs_revival(hint)
    except TypeError:  # unhashable annotation: the worker lets pydantic decide
        revived = True
    try:
        adapter = serialization.adapter(hint)
        if revived:  # and refuse what revives to a value the store refuses (naive times)
            serialization.to_jsonable(adapter.validate_python(value), f"argument {field!r}")
        else:
            adapter.validate_json(serialization.dumps(value), strict=True)
    except pydantic.ValidationError as exc:
        raise errors.InvalidArgument(
            f"workflow {workflow!r}: argument {field!r} does not fit {_type_name(hint)}: "
            + _details(exc),
            workflow=workflow,
            field=field,
        ) from None
    except errors.NotSerializable as exc:
        raise errors.NotSerializable(
            f"workflow {workflow!r}: {exc}", workflow=workflow, field=field
        ) from None
    except (pydantic.PydanticUserError, pydantic.errors.PydanticUndefinedAnnotation, TypeError):
        return  # an annotation pydantic cannot describe: not checked, as documented


def _has_members(hint: Any) -> bool:
    return isinstance(hint, enum.Enum) or any(_has_members(a) for a in typing.get_args(hint))


def _details(exc: pydantic.ValidationError) -> str:
    found = exc.errors(include_url=False, include_context=False)
    parts = []
    for e in found[:_MAX_DETAILS]:
        where = ".".join(str(part) for part in e["loc"])
        given = repr(e["input"])
        given = given if len(given) <= 40 else given[:37] + "..."
        parts.append(f"{where + ': ' if where else ''}{e['msg']} (got {given})")
    more = len(found) - _MAX_DETAILS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else repr(hint).replace("typing.", "")
