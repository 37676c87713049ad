"""JSON rules, the same for every store: what is accepted, what is refused, and where."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
from dataclasses import dataclass, field
from typing import Any

import pydantic
import pytest

from signoff import errors, serialization


class Color(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclass
class Line:
    sku: str
    qty: int = 1


@dataclass
class Order:
    id: str
    lines: list[Line] = field(default_factory=list)
    note: str | None = None


class Customer(pydantic.BaseModel):
    name: str
    since: dt.date
    orders: list[Order] = []


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        (None, None),
        (True, True),
        (False, False),
        (0, 0),
        (2**80, 2**80),
        (-1.5, -1.5),
        ("héllo ✓ 🎉", "héllo ✓ 🎉"),
        ([1, [2, [3]]], [1, [2, [3]]]),
        ((1, "a"), [1, "a"]),
        ({"a": {"b": None}}, {"a": {"b": None}}),
        (Color.RED, "red"),
        (Level.HIGH, 3),
        (Line("x"), {"sku": "x", "qty": 1}),
        (Order("o", [Line("a", 2)]), {"id": "o", "lines": [{"sku": "a", "qty": 2}],
                                      "note": None}),
        (Customer(name="c", since=dt.date(2024, 1, 2)),
         {"name": "c", "since": "2024-01-02", "orders": []}),
    ],
)
def test_accepted_values(value: Any, plain: Any) -> None:
    converted = serialization.to_jsonable(value)
    assert converted == plain
    assert type(converted) is type(plain)
    assert serialization.loads(serialization.dumps(value)) == plain


def test_enum_subclasses_become_their_base_type() -> None:
    assert type(serialization.to_jsonable(Color.RED)) is str
    assert type(serialization.to_jsonable(Level.HIGH)) is int
    assert serialization.dumps({"c": Color.RED}) == '{"c":"red"}'


def test_dumps_is_compact_and_keeps_unicode() -> None:
    assert serialization.dumps({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'
    assert serialization.dumps(None) == "null"
    assert serialization.loads(None) is None
    assert serialization.loads("null") is None


def test_big_integers_round_trip_exactly() -> None:
    big = 2**63 + 1
    assert serialization.loads(serialization.dumps({"n": big}))["n"] == big


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        ("a\x00b", "NUL"),
        ("\ud800", "lone surrogate"),
        ("ok \udfff", "lone surrogate"),
        ({1, 2}, "set"),
        (frozenset(), "frozenset"),
        (b"raw", "bytes"),
        (bytearray(b"x"), "bytearray"),
        (decimal.Decimal("1.10"), "Decimal"),
        (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "datetime"),
        (dt.date(2024, 1, 1), "date"),
        (object(), "object"),
        (Line, "type"),
        (lambda: 1, "function"),
        ((x for x in range(0)), "generator"),
        (complex(1, 2), "complex"),
    ],
)
def test_refused_values_name_the_problem(value: Any, says: str) -> None:
    with pytest.raises(errors.NotSerializable) as info:
        serialization.to_jsonable(value)
    assert says in str(info.value)
    assert isinstance(info.value, errors.InvalidArgument)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": [1, {"b": float("nan")}]}, "payload['a'][1]['b']"),
        ([0, 1, "x\x00"], "payload[2]"),
        ({"k\x00": 1}, "payload key 'k\\x00'"),
        ({"ok": {1: "x"}}, "payload['ok'] has a key of type int"),
        ((1, (2, {3})), "payload[1][1]"),
        (Order("o", [Line("\ud800")]), "payload"),
    ],
)
def test_refusal_names_where_the_bad_value_sits(value: Any, where: str) -> None:
    with pytest.raises(errors.NotSerializable) as info:
        serialization.dumps(value, where="payload")
    assert str(info.value).startswith(where)


def test_bad_value_inside_dataclass_and_model_is_refused() -> None:
    with pytest.raises(errors.NotSerializable):
        serialization.dumps(Order("o", note="\x00"))
    with pytest.raises(errors.NotSerializable):
        serialization.dumps(Order("o", lines=[Line("a", qty={1})]))  # type: ignore[arg-type]


def test_cycles_and_deep_nesting_are_refused_without_recursion_error() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(errors.NotSerializable, match="deeper"):
        serialization.dumps(cyclic)
    deep: Any = 1
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(errors.NotSerializable, match="deeper"):
        serialization.dumps(deep)
    fine: Any = 1
    for _ in range(150):
        fine = {"x": fine}
    assert serialization.loads(serialization.dumps(fine)) == fine


def test_nothing_is_silently_stringified() -> None:
    class Stringy:
        def __str__(self) -> str:
            return "looks fine"

    with pytest.raises(errors.NotSerializable, match="Stringy"):
        serialization.dumps({"x": Stringy()})


def test_parse_json_argument() -> None:
    assert serialization.parse_json_argument('{"a": [1, 2.5, null]}', "--value") == {
        "a": [1, 2.5, None]}
    for constant in ("NaN", "Infinity", "-Infinity", '{"a": NaN}'):
        with pytest.raises(errors.NotSerializable, match="--value"):
            serialization.parse_json_argument(constant, "--value")
    with pytest.raises(errors.NotSerializable, match="NUL"):
        serialization.parse_json_argument('"a\\u0000b"', "--data")
    with pytest.raises(errors.NotSerializable, match="surrogate"):
        serialization.parse_json_argument('"\\ud800"', "--data")
    for broken in ("{", "", "{'a': 1}", "[1,]"):
        with pytest.raises(errors.InvalidArgument, match="not valid JSON") as info:
            serialization.parse_json_argument(broken, "--input")
        assert type(info.value) is errors.InvalidArgument
    with pytest.raises(errors.InvalidArgument):
        serialization.parse_json_argument("[" * 100_000 + "]" * 100_000, "--input")


def test_revive_typed_values() -> None:
    plain = serialization.loads(serialization.dumps(Order("o", [Line("a", 2)])))
    order = serialization.revive(plain, Order)
    assert order == Order("o", [Line("a", 2)])
    assert isinstance(order.lines[0], Line)
    lines = serialization.revive([{"sku": "a"}, {"sku": "b", "qty": 3}], list[Line])
    assert lines == [Line("a"), Line("b", 3)]
    customer = serialization.revive({"name": "c", "since": "2024-01-02"}, Customer)
    assert customer == Customer(name="c", since=dt.date(2024, 1, 2))
    assert serialization.revive({"a": 1}, None) == {"a": 1}
    assert serialization.revive({"a": 1}, Any) == {"a": 1}
    assert serialization.revive(None, Order) is None
    assert serialization.revive(5, int) == 5


def test_revive_refuses_data_that_does_not_fit() -> None:
    with pytest.raises(errors.NotSerializable, match="does not fit"):
        serialization.revive({"sku": 1, "qty": "many"}, Line)
    with pytest.raises(errors.NotSerializable):
        serialization.revive({"since": "yesterday"}, Customer)


def test_same_rules_as_the_json_module_would_refuse() -> None:
    # what we accept, the standard library can print and read back unchanged
    value = {"a": [1, -0.0, 1e308, "\u2028"], "b": {"c": True}}
    text = serialization.dumps(value)
    assert json.loads(text) == value
