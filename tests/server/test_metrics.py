"""`GET /metrics`: off by default, for a token with the read scope, Prometheus' text
format with runs by status and waiting approvals from the store, and no secrets."""

from __future__ import annotations

import math
import re

import httpx

from signoff.server import create_app
from signoff.server.routes_metrics import MEDIA_TYPE
from tests.server.conftest import Api, start_waiting

SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def parse(text: str) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    """The exposition format, strictly: HELP and TYPE per family, then its samples."""
    families: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter", "histogram"), line
            typed.add(name)
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        assert re.sub(r"_(bucket|sum|count)$", "", name) in typed, name
        pairs = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', labels))
        families.setdefault(name, {})[pairs] = math.inf if value == "+Inf" else float(value)
    return families


async def metrics_api(api: Api) -> httpx.AsyncClient:
    app = create_app(api.engine, run_worker=False, metrics=True)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_metrics_are_off_unless_asked_for(api: Api) -> None:
    res = await api.client.get("/metrics", headers=api.auth("reader"))
    assert res.status_code == 404


async def test_metrics_take_a_read_token_and_show_runs_and_approvals(api: Api) -> None:
    async with await metrics_api(api) as client:
        assert (await client.get("/metrics")).status_code == 401
        run_id = await start_waiting(api)
        await start_waiting(api, "ord-2")
        res = await client.get("/metrics", headers=api.auth("reader"))
        assert res.status_code == 200, res.text
        assert res.headers["content-type"] == MEDIA_TYPE
        text = res.text
        found = parse(text)
        runs = found["signoff_runs"]
        assert runs[frozenset({("workflow", "refund"), ("status", "waiting")})] == 2
        assert runs[frozenset({("workflow", "refund"), ("status", "completed")})] == 0
        waiting = found["signoff_approvals_waiting"]
        assert waiting == {frozenset({("workflow", "refund")}): 2}
        assert (
            found["signoff_approvals_oldest_age_seconds"][frozenset({("workflow", "refund")})] >= 0
        )

        decided = await api.client.post(
            f"/runs/{run_id}/approvals/manager/decision",
            json={"action": "approve"},
            headers=api.auth("alice"),
        )
        assert decided.status_code == 200, decided.text
        await api.engine.result(run_id, timeout=10)
        found = parse((await client.get("/metrics", headers=api.auth("reader"))).text)
    assert found["signoff_approvals_waiting"] == {frozenset({("workflow", "refund")}): 1}
    hist = found["signoff_decision_duration_seconds_count"]
    assert hist == {
        frozenset({("workflow", "refund"), ("approver", "alice"), ("status", "approved")}): 1
    }
    inf = frozenset(
        {("workflow", "refund"), ("approver", "alice"), ("status", "approved"), ("le", "+Inf")}
    )
    assert found["signoff_decision_duration_seconds_bucket"][inf] == 1
    transitions = found["signoff_run_transitions_total"]
    assert transitions[frozenset({("workflow", "refund"), ("status", "completed")})] == 1
    steps = found["signoff_step_duration_seconds_count"]
    assert sum(steps.values()) == 2
    for secret in api.tokens.values():
        assert secret not in text
    assert run_id not in text  # no ids in labels
