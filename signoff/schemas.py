"""Schemas for edited values: a pydantic model or a JSON Schema, validated as JSON Schema.

An approval's schema is stored with the request (as JSON Schema), so any process can
validate an edit, including one that does not have the workflow's code. The validator
covers the JSON Schema keywords pydantic emits and the common hand-written ones: type,
enum, const, properties, required, additionalProperties, items, prefixItems, min/max
(exclusive too), minLength/maxLength, pattern, minItems/maxItems, uniqueItems,
anyOf/oneOf/allOf/not and local `$ref`s (`#/$defs/...`). Other keywords are ignored.
"""

from __future__ import annotations

import re
from typing import Any

from signoff import errors

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def to_json_schema(schema: Any) -> dict[str, Any]:
    """The JSON Schema of `schema`: a pydantic model class, or a JSON Schema dict."""
    if isinstance(schema, dict):
        return schema
    model_json_schema = getattr(schema, "model_json_schema", None)
    if isinstance(schema, type) and callable(model_json_schema):
        result: dict[str, Any] = model_json_schema()
        return result
    raise errors.InvalidArgument(
        f"schema must be a pydantic model class or a JSON Schema dict, not {schema!r:.60}"
    )


def validate(value: Any, schema: dict[str, Any]) -> list[str]:
    """Every way `value` breaks `schema`, as readable lines ("amount: -5 is less than the
    minimum of 0"); an empty list when it validates."""
    found: list[str] = []
    _check(value, schema, schema, "", found)
    return found


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = _TYPES.get(name)
    return expected is not None and isinstance(value, expected)


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        if part:
            node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
    return node if isinstance(node, dict) else {}


def _check(value: Any, schema: Any, root: dict[str, Any], path: str, out: list[str]) -> None:
    if schema is True or not isinstance(schema, dict):
        return
    where = f"{path}: " if path else ""
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), root, path, out)
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(value, n) for n in names):
            out.append(f"{where}{value!r:.60} is not of type {' or '.join(names)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}{value!r:.60} is not one of {schema['enum']!r:.80}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}{value!r:.60} is not {schema['const']!r:.60}")
    _combinators(value, schema, root, path, out)
    if isinstance(value, dict):
        _object(value, schema, root, path, out)
    elif isinstance(value, list):
        _array(value, schema, root, path, out)
    elif isinstance(value, str):
        _string(value, schema, where, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _number(value, schema, where, out)


def _combinators(
    value: Any, schema: dict[str, Any], root: dict[str, Any], path: str, out: list[str]
) -> None:
    where = f"{path}: " if path else ""
    for sub in schema.get("allOf", []):
        _check(value, sub, root, path, out)
    if "anyOf" in schema and not any(not validate_in(value, s, root) for s in schema["anyOf"]):
        out.append(f"{where}{value!r:.60} matches none of the allowed shapes")
    if "oneOf" in schema:
        matching = sum(1 for s in schema["oneOf"] if not validate_in(value, s, root))
        if matching != 1:
            out.append(f"{where}{value!r:.60} must match exactly one allowed shape")
    if "not" in schema and not validate_in(value, schema["not"], root):
        out.append(f"{where}{value!r:.60} matches a shape it must not")


def validate_in(value: Any, schema: Any, root: dict[str, Any]) -> list[str]:
    found: list[str] = []
    _check(value, schema, root, "", found)
    return found


def _object(
    value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], path: str, out: list[str]
) -> None:
    prefix = f"{path}." if path else ""
    props: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            out.append(f"{prefix}{name}: required field missing")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in props:
            _check(item, props[name], root, f"{prefix}{name}", out)
        elif extra is False:
            out.append(f"{prefix}{name}: no such field (additional fields are not allowed)")
        else:
            _check(item, extra, root, f"{prefix}{name}", out)


def _array(
    value: list[Any], schema: dict[str, Any], root: dict[str, Any], path: str, out: list[str]
) -> None:
    where = f"{path}: " if path else ""
    prefix_items = schema.get("prefixItems", [])
    for i, item in enumerate(value):
        sub = prefix_items[i] if i < len(prefix_items) else schema.get("items", True)
        _check(item, sub, root, f"{path}[{i}]", out)
    if "minItems" in schema and len(value) < schema["minItems"]:
        out.append(f"{where}has {len(value)} items, fewer than {schema['minItems']}")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        out.append(f"{where}has {len(value)} items, more than {schema['maxItems']}")
    if schema.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
        out.append(f"{where}items are not unique")


def _string(value: str, schema: dict[str, Any], where: str, out: list[str]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        out.append(f"{where}{value!r:.60} is shorter than {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        out.append(f"{where}{value!r:.60} is longer than {schema['maxLength']} characters")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        out.append(f"{where}{value!r:.60} does not match {schema['pattern']!r}")


def _number(value: float, schema: dict[str, Any], where: str, out: list[str]) -> None:
    checks = (
        ("minimum", -1, "less than the minimum of"),
        ("maximum", 1, "greater than the maximum of"),
        ("exclusiveMinimum", 0, "not greater than"),
        ("exclusiveMaximum", 0, "not less than"),
    )
    for keyword, sign, text in checks:
        bound = schema.get(keyword)
        if not isinstance(bound, int | float) or isinstance(bound, bool):
            continue
        below, above = value < bound, value > bound
        if keyword == "exclusiveMinimum":
            fails = not above
        elif keyword == "exclusiveMaximum":
            fails = not below
        else:
            fails = below if sign < 0 else above
        if fails:
            out.append(f"{where}{value!r} is {text} {bound}")
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step and (value / step) % 1:
        out.append(f"{where}{value!r} is not a multiple of {step}")
