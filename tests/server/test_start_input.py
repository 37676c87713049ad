"""Over HTTP, a start whose input does not fit the workflow is a 422 naming the field,
and nothing is started."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import Api


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"args": ["o-1"], "kwargs": {"metadata": {"x": 1}}}, "unexpected argument 'metadata'"),
        ({"args": ["o-1", "lots"]}, "argument 'amount' does not fit int"),
        ({"args": []}, "missing argument 'order_id'"),
        ({"args": [7]}, "argument 'order_id' does not fit str"),
    ],
)
async def test_input_that_does_not_fit_is_422_and_starts_nothing(
    api: Api, body: dict[str, Any], says: str
) -> None:
    res = await api.client.post(
        "/runs", json={"workflow": "refund", **body}, headers=api.auth("starter")
    )
    assert res.status_code == 422, res.text
    problem = res.json()
    assert problem["code"] == "invalid_argument"
    assert says in problem["detail"]
    runs: Any = await api.engine.list_runs()
    assert list(getattr(runs, "items", runs)) == []
