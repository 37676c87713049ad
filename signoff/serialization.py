"""JSON in and out of the store, the same rules for every backend.

Accepted: None, bool, int (any size), finite float, str, list, tuple (stored as a list),
dict with str keys, dataclass instances and pydantic models (stored as their fields), and
the types business code uses, stored as strings that keep every digit:

| value | stored as |
| --- | --- |
| aware `datetime` | ISO 8601 with its UTC offset, `"2024-05-01T09:30:00+02:00"` |
| `date`, `time` | ISO 8601, `"2024-05-01"`, `"09:30:00"` (a time may be naive: a time of day) |
| `Decimal` | its exact text, `"129.90"` (never a float, so no digit is lost) |
| `UUID` | its canonical text |
| `enum.Enum` member | its value (which must be storable itself) |

Enum members, UUIDs, dates and Decimals are also accepted as dict keys.

Refused with `NotSerializable`, naming where the bad value sits: NaN and infinities (float
or Decimal), naive datetimes (a naive `datetime.now()` is the worker's local time, so the
same code would journal different instants on workers in different zones; use
`datetime.now(UTC)`), strings holding NUL (`\\u0000`) or lone surrogates (PostgreSQL's
jsonb refuses them, SQLite would store them, so both refuse), and every other type (set,
bytes, custom classes, cycles). Nothing is ever pickled or silently `str()`-ed.

Values come back typed when the caller knows the type: `revive(value, tp)` validates the
parsed JSON with pydantic against `tp` (a dataclass, a pydantic model, `datetime`,
`Decimal`, an enum, `list[Item]`, ...). Step results are revived from the step function's
return annotation and workflow arguments from the workflow's parameter annotations; where
there is no annotation the stored form comes back (an ISO string, a Decimal's text), on
the first execution and on replay alike. An aware datetime comes back as the same instant
with the same UTC offset (a `ZoneInfo` becomes a fixed offset).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import functools
import json
import math
import typing
import uuid
from collections.abc import Callable
from typing import Any

import pydantic

from signoff import errors

_MAX_DEPTH = 200


def compact_encoder(*, sort_keys: bool = False, allow_nan: bool = True) -> Callable[[Any], str]:
    """`json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False,
    ...).encode`, the same text, made once: the C encoder is built here rather than on
    every call (what `JSONEncoder.encode` does, in Python, each time). For values without
    cycles; a value that is not JSON raises `TypeError` (a NaN, with `allow_nan=False`,
    `ValueError`), as the encoder does."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator in this Python
        return json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, check_circular=False,
            sort_keys=sort_keys, allow_nan=allow_nan,
        ).encode  # fmt: skip
    chunks = make(None, _not_json, json.encoder.encode_basestring, None, ":", ",", sort_keys,
                  False, allow_nan)  # fmt: skip
    join = "".join

    def encode(value: Any) -> str:
        return join(chunks(value, 0))

    return encode


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


_dumps = compact_encoder(allow_nan=False)


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
            key = k if type(k) is str else _key(k, where)
            _check_str(key, f"{where} key {key!r}")
            out[key] = _convert(v, f"{where}[{key!r}]", depth + 1)
        if len(out) != len(value):
            raise errors.NotSerializable(
                f"{where} has two keys with the same text (such as a UUID and its string)",
                where=where,
            )
        return out
    if tp is list or tp is tuple:
        return [_convert(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, pydantic.BaseModel):
        _scan(value, where, depth)  # pydantic's JSON would let these through
        return _convert(value.model_dump(mode="json"), where, depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _convert(fields, where, depth + 1)
    if isinstance(value, bool | int | float | str):  # subclasses such as StrEnum
        return _convert(_base(value), where, depth)
    if isinstance(value, _AS_TEXT):
        return _as_text(value, where)
    if isinstance(value, enum.Enum):
        return _convert(value.value, where, depth + 1)
    raise errors.NotSerializable(
        f"{where} is of type {tp.__name__}, which is not JSON; return plain data, "
        "a dataclass or a pydantic model",
        where=where,
        type_name=tp.__name__,
    )


_AS_TEXT = (dt.date, dt.time, decimal.Decimal, uuid.UUID)  # dt.datetime is a dt.date


def _as_text(value: dt.date | dt.time | decimal.Decimal | uuid.UUID, where: str) -> str:
    """The exact text of a business value, refusing those that have no single meaning."""
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise errors.NotSerializable(
                f"{where} is Decimal({str(value)!r}); NaN and infinities are not JSON",
                where=where,
            )
        return str(value)
    if isinstance(value, dt.datetime | dt.time) and value.tzinfo is not None:
        if value.utcoffset() is None:
            raise errors.NotSerializable(
                f"{where} is a time whose zone has no fixed UTC offset ({value.tzinfo}); "
                "give a datetime, or a time with a fixed offset",
                where=where,
            )
    elif isinstance(value, dt.datetime):
        raise errors.NotSerializable(
            f"{where} is a naive datetime ({value.isoformat()}), which means a different "
            "instant on each machine; give an aware one, such as datetime.now(UTC) or "
            "dt.replace(tzinfo=UTC)",
            where=where,
        )
    return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)


def _key(key: Any, where: str) -> str:
    """A dict key stored as text: str enums, UUIDs, dates and Decimals; not numbers."""
    text = None
    if isinstance(key, (str, enum.Enum, *_AS_TEXT)) and not isinstance(key, int | float):
        text = _convert(key, f"{where} key {key!r}", 0)
    if not isinstance(text, str):
        raise errors.NotSerializable(
            f"{where} has a key of type {type(key).__name__}; JSON keys are strings",
            where=where,
        )
    return text


def _scan(value: Any, where: str, depth: int) -> None:
    """Refuse, inside a pydantic model, the values its own JSON mode would let through:
    naive datetimes and NaN or infinite Decimals (floats are checked after the dump)."""
    if depth > _MAX_DEPTH:
        raise errors.NotSerializable(
            f"{where} is nested deeper than {_MAX_DEPTH} levels (or is cyclic)", where=where
        )
    if isinstance(value, dt.datetime | dt.time | decimal.Decimal):
        _as_text(value, where)
    elif isinstance(value, pydantic.BaseModel):
        fields = {n: getattr(value, n, None) for n in type(value).model_fields}
        for name, item in {**fields, **(value.__pydantic_extra__ or {})}.items():
            _scan(item, f"{where}.{name}", depth + 1)
    elif isinstance(value, dict):
        for k, item in value.items():
            _scan(item, f"{where}[{k!r}]", depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            _scan(item, f"{where}[{i}]", depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _scan(getattr(value, f.name), f"{where}.{f.name}", depth + 1)


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
    if _plain(value, 0):  # JSON data already: encode it as it is, and check the text
        try:
            text: str = _dumps(value)
        except ValueError:  # NaN or an infinity: the full check below names it
            pass
        else:
            if "\\u0000" not in text and (text.isascii() or _encodable(text)):
                return text
    return str(_dumps(_convert(value, where, 0)))


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any, depth: int) -> bool:
    """Whether `value` is JSON data as it stands (dicts with str keys, lists, tuples,
    str, int, float, bool, None; at most `_MAX_DEPTH` deep), so that its JSON text needs
    no converted copy. What the text shows is checked on the text: a NUL in any string
    is written `\\u0000`, a lone surrogate cannot be encoded, a NaN or an infinity is
    refused by the encoder; each sends the value to `_convert`, which names it."""
    tp = type(value)
    if tp is dict:
        if depth >= _MAX_DEPTH:
            return False
        for k, v in value.items():
            if type(k) is not str:
                return False
            t = type(v)
            if t is dict or t is list or t is tuple:
                if not _plain(v, depth + 1):
                    return False
            elif t not in _SCALARS:
                return False
        return True
    if tp is list or tp is tuple:
        if depth >= _MAX_DEPTH:
            return False
        for v in value:
            t = type(v)
            if t is dict or t is list or t is tuple:
                if not _plain(v, depth + 1):
                    return False
            elif t not in _SCALARS:
                return False
        return True
    return tp in _SCALARS


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def loads(text: str | None) -> Any:
    """Parse JSON text written by `dumps` (None stays None)."""
    if text is None:
        return None
    try:  # the C scanner itself: the text `dumps` writes has no whitespace around it
        value, end = _scan_json(text, 0)
        if end == len(text):
            return value
    except Exception:  # json.loads below raises what it raises
        pass
    return json.loads(text)


# the decoder's C scanner: (value, end) of the JSON value at an index
_scan_json: Callable[[str, int], tuple[Any, int]] = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009


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
def adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    """The (cached) pydantic `TypeAdapter` of an annotation."""
    return pydantic.TypeAdapter(tp)


_REVIVED = (pydantic.BaseModel, enum.Enum, *_AS_TEXT)


@functools.lru_cache(maxsize=1024)
def needs_revival(tp: Any) -> bool:
    """Whether `tp` mentions a type that plain JSON does not give back by itself (a
    dataclass, a pydantic model, a datetime, a Decimal, an enum, ...)."""
    if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or issubclass(tp, _REVIVED)):
        return True
    return any(needs_revival(arg) for arg in typing.get_args(tp))


def revive(value: Any, tp: Any) -> Any:
    """Rebuild a typed value (dataclass, pydantic model, `datetime`, `Decimal`, enum,
    `list[Item]`, ...) from plain JSON.

    Annotations that plain JSON already fits (`int`, `dict[str, Any]`) leave the value as
    it is."""
    if tp is None or value is None:
        return value
    try:
        if not needs_revival(tp):
            return value
    except TypeError:  # unhashable annotation: let pydantic decide
        pass
    try:
        return adapter(tp).validate_python(value)
    except (pydantic.ValidationError, TypeError) as exc:
        raise errors.NotSerializable(f"stored value does not fit {tp!r}: {exc}") from exc
