"""JSON rules, the same for every store: what is accepted, what is refused, and where."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import uuid
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

import pydantic
import pytest

from signoff import errors, serialization


class Color(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Size(enum.Enum):
    SMALL = "s"
    LARGE = 10


class Shade(enum.Enum):
    DARK = frozenset({1})  # an enum whose value is not storable


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
        (Order("o", [Line("a", 2)]), {"id": "o", "lines": [{"sku": "a", "qty": 2}], "note": None}),
        (
            Customer(name="c", since=dt.date(2024, 1, 2)),
            {"name": "c", "since": "2024-01-02", "orders": []},
        ),
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
        (decimal.Decimal("NaN"), "NaN and infinities"),
        (decimal.Decimal("sNaN"), "NaN and infinities"),
        (decimal.Decimal("-Infinity"), "NaN and infinities"),
        ({"at": dt.datetime(2024, 1, 1)}, "naive datetime"),
        (dt.time(9, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")), "no fixed UTC offset"),
        (Shade.DARK, "set"),
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
        "a": [1, 2.5, None]
    }
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


# business types: datetimes, dates, times, Decimals, UUIDs and enums --------------------

UTC_NOON = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
PARIS = dt.datetime(2024, 5, 1, 9, 30, 15, 250, tzinfo=dt.timezone(dt.timedelta(hours=2)))
ORDER_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@dataclass
class Invoice:
    id: uuid.UUID
    due: dt.date
    total: decimal.Decimal
    size: Size
    issued: dt.datetime
    lines: dict[str, decimal.Decimal] = field(default_factory=dict)


class Payment(pydantic.BaseModel):
    amount: decimal.Decimal
    at: dt.datetime
    cutoff: dt.time
    invoices: list[Invoice] = []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (UTC_NOON, '"2024-05-01T12:00:00+00:00"'),
        (PARIS, '"2024-05-01T09:30:15.000250+02:00"'),
        (
            dt.datetime(2024, 3, 31, 2, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
            '"2024-03-31T02:30:00+01:00"',
        ),
        (dt.date(2024, 2, 29), '"2024-02-29"'),
        (dt.time(9, 30), '"09:30:00"'),
        (dt.time(9, 30, tzinfo=dt.UTC), '"09:30:00+00:00"'),
        (decimal.Decimal("129.90"), '"129.90"'),
        (decimal.Decimal("-0.000000001"), '"-1E-9"'),
        (
            decimal.Decimal("12345678901234567890123456789.123456789"),
            '"12345678901234567890123456789.123456789"',
        ),
        (ORDER_ID, '"12345678-1234-5678-1234-567812345678"'),
        (Size.SMALL, '"s"'),
        (Size.LARGE, "10"),
        ({"due": [dt.date(2024, 1, 1)]}, '{"due":["2024-01-01"]}'),
        (
            {ORDER_ID: 1, Color.RED: 2, dt.date(2024, 1, 1): 3},
            '{"12345678-1234-5678-1234-567812345678":1,"red":2,"2024-01-01":3}',
        ),
    ],
)
def test_business_types_are_stored_as_exact_text(value: Any, text: str) -> None:
    assert serialization.dumps(value) == text


def test_decimal_is_never_a_float() -> None:
    exact = decimal.Decimal("0.1") + decimal.Decimal("0.2")
    assert serialization.dumps({"x": exact}) == '{"x":"0.3"}'
    back = serialization.revive(serialization.loads(serialization.dumps(exact)), decimal.Decimal)
    assert back == exact and str(back) == "0.3"


@pytest.mark.parametrize(
    ("value", "tp"),
    [
        (UTC_NOON, dt.datetime),
        (PARIS, dt.datetime),
        (dt.date(2024, 2, 29), dt.date),
        (dt.time(23, 59, 59, 999999), dt.time),
        (decimal.Decimal("129.90"), decimal.Decimal),
        (decimal.Decimal("1E+3"), decimal.Decimal),
        (decimal.Decimal("98765432109876543210.000000000000000001"), decimal.Decimal),
        (ORDER_ID, uuid.UUID),
        (Size.LARGE, Size),
        (Color.RED, Color),
        ([UTC_NOON, PARIS], list[dt.datetime]),
        ({"a": decimal.Decimal("1.10")}, dict[str, decimal.Decimal]),
        ({ORDER_ID: Size.SMALL}, dict[uuid.UUID, Size]),
        (None, dt.datetime | None),
        ((dt.date(2024, 1, 1), decimal.Decimal("2.50")), tuple[dt.date, decimal.Decimal]),
        (
            Invoice(
                ORDER_ID,
                dt.date(2024, 6, 30),
                decimal.Decimal("10.00"),
                Size.SMALL,
                PARIS,
                {"fee": decimal.Decimal("0.50")},
            ),
            Invoice,
        ),
        (
            Payment(
                amount=decimal.Decimal("7.70"),
                at=UTC_NOON,
                cutoff=dt.time(17),
                invoices=[
                    Invoice(
                        ORDER_ID, dt.date(2024, 1, 1), decimal.Decimal("7.70"), Size.LARGE, UTC_NOON
                    )
                ],
            ),
            Payment,
        ),
    ],
)
def test_business_types_revive_to_equal_values(value: Any, tp: Any) -> None:
    plain = serialization.loads(serialization.dumps(value))
    assert serialization.needs_revival(tp)
    back = serialization.revive(plain, tp)
    assert back == value
    assert type(back) is type(value)
    if isinstance(value, dt.datetime):
        assert back.utcoffset() == value.utcoffset()
    # and the same text again: nothing drifts between the first run and a replay
    assert serialization.dumps(back) == serialization.dumps(value)


def test_revived_values_keep_digits_and_offsets() -> None:
    back = serialization.revive(serialization.loads(serialization.dumps(PARIS)), dt.datetime)
    assert back.utcoffset() == dt.timedelta(hours=2)
    assert (back.hour, back.microsecond) == (9, 250)
    money = serialization.revive("129.90", decimal.Decimal)
    assert isinstance(money, decimal.Decimal) and str(money) == "129.90"
    assert type(serialization.revive("s", Size)) is Size


def test_without_an_annotation_the_stored_text_comes_back() -> None:
    assert not serialization.needs_revival(dict[str, Any])
    assert serialization.revive("2024-05-01", Any) == "2024-05-01"
    assert serialization.revive({"at": "x"}, dict[str, Any]) == {"at": "x"}


def test_naive_datetimes_are_refused_everywhere_with_the_fix() -> None:
    naive = dt.datetime(2024, 5, 1, 9, 30)
    for value, where in [
        (naive, "value"),
        ([1, {"due": naive}], "value[1]['due']"),
        (
            Invoice(ORDER_ID, dt.date(2024, 1, 1), decimal.Decimal(1), Size.SMALL, naive),
            "value['issued']",
        ),
        (Payment(amount=decimal.Decimal(1), at=naive, cutoff=dt.time(1)), "value.at"),
        (
            Payment(
                amount=decimal.Decimal(1),
                at=UTC_NOON,
                cutoff=dt.time(1),
                invoices=[
                    Invoice(ORDER_ID, dt.date(2024, 1, 1), decimal.Decimal(1), Size.SMALL, naive)
                ],
            ),
            "value.invoices[0].issued",
        ),
    ]:
        with pytest.raises(errors.NotSerializable, match="naive datetime") as info:
            serialization.dumps(value)
        assert str(info.value).startswith(where), str(info.value)
        assert "datetime.now(UTC)" in str(info.value)


def test_non_finite_decimals_are_refused_inside_models_too() -> None:
    bad = Payment.model_construct(
        amount=decimal.Decimal("Infinity"), at=UTC_NOON, cutoff=dt.time(1), invoices=[]
    )
    with pytest.raises(errors.NotSerializable, match=r"value\.amount is Decimal"):
        serialization.dumps(bad)


def test_keys_that_would_collide_or_are_not_text_are_refused() -> None:
    with pytest.raises(errors.NotSerializable, match="same text"):
        serialization.dumps({ORDER_ID: 1, str(ORDER_ID): 2})
    for key in (Level.HIGH, Size.LARGE, decimal.Decimal("NaN"), dt.datetime(2024, 1, 1)):
        with pytest.raises(errors.NotSerializable):
            serialization.dumps({key: 1})


def test_literal_enum_members_and_times_in_models() -> None:
    from typing import Literal

    # pydantic cannot read a Literal of enum members from JSON: left as stored
    assert not serialization.needs_revival(Literal[Size.SMALL])
    assert serialization.revive("s", Literal[Size.SMALL]) == "s"

    class Shift(pydantic.BaseModel):
        start: dt.time

    paris = zoneinfo.ZoneInfo("Europe/Paris")
    with pytest.raises(errors.NotSerializable, match="no fixed UTC offset"):
        serialization.dumps(Shift(start=dt.time(9, tzinfo=paris)))
    assert serialization.dumps(Shift(start=dt.time(9))) == '{"start":"09:00:00"}'
