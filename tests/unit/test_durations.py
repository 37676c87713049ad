"""Durations as users write them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from signoff import errors
from signoff.durations import to_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("4h", 14_400.0),
        ("7d", 604_800.0),
        ("1h30m", 5_400.0),
        ("500ms", 0.5),
        ("15m", 900.0),
        ("2w", 1_209_600.0),
        ("1d2h3m4s", 93_784.0),
        ("1.5h", 5_400.0),
        ("0s", 0.0),
        (" 4H ", 14_400.0),
        ("1m500ms", 60.5),
    ],
)
def test_text_durations(text: str, seconds: float) -> None:
    assert to_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (timedelta(days=7), 604_800.0),
        (timedelta(milliseconds=250), 0.25),
        (timedelta(0), 0.0),
        (90, 90.0),
        (0.01, 0.01),
    ],
)
def test_timedelta_and_numbers(value: Any, seconds: float) -> None:
    result = to_seconds(value)
    assert result == pytest.approx(seconds) and type(result) is float


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "7x",
        "soon",
        "h",
        "1h 30m",
        "-1h",
        "30",
        "1.h",
        "s30",
        "1h30",
        "ms",
        "1e3s",
        "3 days",
        "PT1H",
    ],
)
def test_bad_text_is_refused_with_examples(bad: str) -> None:
    with pytest.raises(errors.InvalidDuration) as info:
        to_seconds(bad, "timeout")
    message = str(info.value)
    assert message.startswith("timeout=") and "'30s'" in message and "'7d'" in message


@pytest.mark.parametrize(
    "bad",
    [-1, -0.5, float("nan"), float("inf"), timedelta(seconds=-1), True, None, [1], b"1s"],
)
def test_bad_values_are_refused(bad: Any) -> None:
    with pytest.raises(errors.InvalidDuration) as info:
        to_seconds(bad, "lease")
    assert "lease=" in str(info.value)
    assert isinstance(info.value, errors.InvalidArgument)


def test_default_name_in_the_message() -> None:
    with pytest.raises(errors.InvalidDuration, match=r"^duration="):
        to_seconds("nope")
