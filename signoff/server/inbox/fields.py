"""The edit form: fields made from the proposed value, read back with their types.

An object whose values are all plain (text, whole numbers, numbers, true/false) becomes
one input per field, typed after the proposed value (the types come from the approval
on the server, never from the form). Anything else is edited as JSON in a text area.
The approval's schema (stored with its policy) is checked by the engine when the edit
is decided; its messages ("amount: -5 is less than the minimum of 0") are placed beside
the field they name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

JSON_FIELD = "value_json"
PREFIX = "field."
MAX_FIELDS = 50


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str  # int, float, bool, str, text
    value: str
    original: str = ""

    @property
    def input(self) -> str:
        return PREFIX + self.name


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text" if "\n" in value or len(value) > 120 else "str"
    return None


def form_fields(proposed: Any, given: dict[str, str] | None = None) -> list[Field] | None:
    """One field per key of `proposed` (values from `given` when re-shown), or None."""
    if not isinstance(proposed, dict) or not proposed or len(proposed) > MAX_FIELDS:
        return None
    out = []
    for name, value in proposed.items():
        kind = _kind(value)
        if kind is None:
            return None
        shown = "true" if value is True else "false" if value is False else str(value)
        out.append(Field(name, kind, (given or {}).get(PREFIX + name, shown), shown))
    return out


ANSWER = "answer"  # the one field of a question answered with text
_KINDS = {"string": "text", "integer": "int", "number": "float", "boolean": "bool"}


def answer_fields(
    schema: dict[str, Any] | None, given: dict[str, str] | None = None
) -> list[Field] | None:
    """The answer form of a question (`ctx.ask`), made from its schema: one text field for
    a text answer, one field per property of an object of plain values, else None (the
    answer is written as JSON)."""
    given = given or {}
    kind = _KINDS.get(str((schema or {}).get("type")))
    if kind is not None:
        return [Field(ANSWER, kind, given.get(PREFIX + ANSWER, ""))]
    properties = (schema or {}).get("properties")
    if (schema or {}).get("type") != "object" or not isinstance(properties, dict):
        return None
    out = []
    for name, prop in list(properties.items())[:MAX_FIELDS]:
        kind = _KINDS.get(str(prop.get("type") if isinstance(prop, dict) else None))
        if kind is None:
            return None
        out.append(Field(name, "str" if kind == "text" else kind, given.get(PREFIX + name, "")))
    return out


def read_answer(schema: dict[str, Any] | None, form: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """The answer from the form, and the problems by field name ("" for the JSON)."""
    fields = answer_fields(schema)
    value, problems = _read_fields(fields, form)
    if (
        fields is not None
        and [f.name for f in fields] == [ANSWER]
        and (schema or {}).get("type") != "object"
    ):
        if fields[0].kind == "text" and not str(value.get(ANSWER, "")).strip():
            problems[ANSWER] = "Write an answer (or decline to answer below)."
        return value.get(ANSWER), problems
    return value, problems


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constant)


def read(proposed: Any, form: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """The edited value from the form, and the problems by field name ("" for the JSON)."""
    return _read_fields(form_fields(proposed), form)


def _read_fields(fields: list[Field] | None, form: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """The value the form's fields give (the JSON text area's when there are none), and
    the problems by field name ("" for the JSON)."""
    if fields is None:
        try:
            return parse_json(form.get(JSON_FIELD, "")), {}
        except (ValueError, RecursionError) as exc:
            return None, {"": f"not valid JSON: {str(exc)[:200]}"}
    value: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field in fields:
        text = form.get(field.input, "")
        try:
            value[field.name] = _convert(field.kind, text)
        except ValueError as exc:
            problems[field.name] = str(exc)
    return value, problems


def _convert(kind: str, text: str) -> Any:
    if kind == "bool":
        return text == "true"
    if kind == "int":
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
    if kind == "float":
        try:
            number = float(text.strip())
        except ValueError:
            raise ValueError("must be a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return number
    return text


def place(messages: list[str], proposed: Any, names: set[str] | None = None) -> dict[str, str]:
    """Schema messages by field name: "amount: ..." goes beside `amount`; the rest ("")."""
    if names is None:
        names = {f.name for f in form_fields(proposed) or []}
    out: dict[str, str] = {}
    for message in messages:
        head, sep, rest = message.partition(": ")
        name = head.split(".")[0].split("[")[0] if sep else ""
        where, text = (name, rest) if name in names else ("", message)
        out[where] = f"{out[where]}; {text}" if where in out else text
    return out


def diff(original: Any, edited: Any) -> list[tuple[str, str, str]]:
    """(field, before, after) for each changed field (the whole value when not objects)."""
    if isinstance(original, dict) and isinstance(edited, dict):
        keys = list(original) + [k for k in edited if k not in original]
        return [
            (k, json.dumps(original.get(k)), json.dumps(edited.get(k)))
            for k in keys
            if original.get(k) != edited.get(k) or (k in original) != (k in edited)
        ]
    if original == edited:
        return []
    return [("value", json.dumps(original), json.dumps(edited))]
