"""JSON in and out of the store, the same rules for every backend.

Accepted: None, bool, int (any size), finite float, str, list, tuple (stored as a list),
dict with str keys, dataclass instances and pydantic models (stored as their fields).
Refused with `NotSerializable`, naming where the bad value sits: NaN and infinities,
strings holding NUL (`\\u0000`) or lone surrogates (PostgreSQL's jsonb refuses them,
SQLite would store them, so both refuse), and every other type (set, bytes, Decimal,
datetime, custom classes, cycles). Nothing is ever pickled or silently `str()`-ed.

Values come back typed when the caller knows the type: `decode(text, tp)` validates the
parsed JSON with pydantic against `tp` (a dataclass, a pydantic model, `list[Item]`, ...).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from typing import Any

import pydantic

from signoff import errors

_MAX_DEPTH = 200

_dumps = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
).encode


def to_jsonable(value: Any, where: str = "value") -> Any:
    """Return `value` as plain JSON data, or raise `NotSerializable` naming the culprit."""
    return _convert(value, where, 0)


def _convert(value: Any, where: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise errors.NotSerializable(
            f"{where} is nested deeper than {_MAX_DEPTH} levels (or is cyclic)", where=where
        )
    if value is None or value is True or value is False:
        return value
    tp = type(value)
    if tp is str:
        _check_str(value, where)
        return value
    if tp is int:
        return value
    if tp is float:
        if not math.isfinite(value):
            raise errors.NotSerializable(
                f"{where} is {value!r}; NaN and infinities are not JSON", where=where
            )
        return value
    if tp is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise errors.NotSerializable(
                    f"{where} has a key of type {type(k).__name__}; JSON keys are strings",
                    where=where,
                )
            _check_str(k, f"{where} key {k!r}")
            out[k] = _convert(v, f"{where}[{k!r}]", depth + 1)
        return out
    if tp is list or tp is tuple:
        return [_convert(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, pydantic.BaseModel):
        return _convert(value.model_dump(mode="json"), where, depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _convert(fields, where, depth + 1)
    if isinstance(value, bool | int | float | str):  # subclasses such as StrEnum
        return _convert(_base(value), where, depth)
    raise errors.NotSerializable(
        f"{where} is of type {tp.__name__}, which is not JSON; return plain data, "
        "a dataclass or a pydantic model",
        where=where,
        type_name=tp.__name__,
    )


def _base(value: bool | int | float | str) -> bool | int | float | str:
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    raise AssertionError(value)  # pragma: no cover


def _check_str(s: str, where: str) -> None:
    if "\x00" in s:
        raise errors.NotSerializable(f"{where} contains a NUL character (\\u0000)", where=where)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.NotSerializable(
            f"{where} contains a lone surrogate, which is not valid Unicode", where=where
        ) from None


def check_texts(*texts: tuple[str | None, str]) -> None:
    """Refuse text arguments (ids, keys, names) that are not strings, or that some store
    cannot keep (NUL, lone surrogates), the same way on every store."""
    for text, what in texts:
        if text is None:
            continue
        if not isinstance(text, str):
            raise errors.InvalidArgument(f"{what} must be a string, not {type(text).__name__}")
        _check_str(text, what)


def dumps(value: Any, where: str = "value") -> str:
    """Validate and encode `value` as compact JSON text."""
    return str(_dumps(_convert(value, where, 0)))


def loads(text: str | None) -> Any:
    """Parse JSON text written by `dumps` (None stays None)."""
    return None if text is None else json.loads(text)


def parse_json_argument(text: str, where: str) -> Any:
    """Parse user-supplied JSON text (CLI, HTTP) with the same rules as stored values."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise errors.InvalidArgument(f"{where} is not valid JSON: {exc}") from None
    except ValueError as exc:
        raise errors.NotSerializable(f"{where}: {exc}") from None
    return to_jsonable(value, where)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed; NaN and infinities are not JSON")


@functools.lru_cache(maxsize=1024)
def _adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(tp)


@functools.lru_cache(maxsize=1024)
def _has_models(tp: Any) -> bool:
    """Whether `tp` mentions a dataclass or pydantic model (else JSON needs no rebuilding)."""
    if isinstance(tp, type) and (
        dataclasses.is_dataclass(tp) or issubclass(tp, pydantic.BaseModel)
    ):
        return True
    return any(_has_models(arg) for arg in typing.get_args(tp))


def revive(value: Any, tp: Any) -> Any:
    """Rebuild a typed value (dataclass, pydantic model, `list[Item]`, ...) from plain JSON.

    Annotations without models (`int`, `dict[str, Any]`) leave the value as it is."""
    if tp is None or value is None:
        return value
    try:
        if not _has_models(tp):
            return value
    except TypeError:  # unhashable annotation: let pydantic decide
        pass
    try:
        return _adapter(tp).validate_python(value)
    except (pydantic.ValidationError, TypeError) as exc:
        raise errors.NotSerializable(f"stored value does not fit {tp!r}: {exc}") from exc
