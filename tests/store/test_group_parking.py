"""Parking on several waits, at the store: an answer that arrives between opening a wait
and parking is found by the park (both touch the run's row), so it is never missed."""

from __future__ import annotations

from signoff import DecisionStatus
from signoff.journal import EntryKind
from signoff.store import open_store
from signoff.store.base import WaitRequest
from signoff.testing import FakeClock


async def test_a_decision_between_open_and_park_is_returned_not_missed(
    store_url: str, clock: FakeClock
) -> None:
    store = open_store(store_url)
    try:
        now = clock.time()
        _, claim, _ = await store.create_run(
            run_id="r1", workflow="wf", input_json='{"args":[],"kwargs":{}}',
            requested_by=None, now=now, claim_for="w1", lease_until=now + 30,
        )  # fmt: skip
        assert claim is not None
        for seq, key in ((0, "legal"), (1, "finance")):
            wait = WaitRequest(kind=EntryKind.APPROVAL, seq=seq, name=key, path=f"{seq}/0")
            opened = await store.open_wait(
                run_id="r1", fence=claim.fence, wait=wait, extra=[], now=now, park=False
            )
            assert not opened.resolved
        decided = await store.decide(
            run_id="r1", key="finance", status=DecisionStatus.APPROVED,
            value_json=None, by="fran", reason=None, now=now, claim_for=None,
            lease_until=now + 30,
        )  # fmt: skip
        assert decided.outcome == "decided" and decided.claim is None  # the run is running
        answers = await store.park(run_id="r1", fence=claim.fence, seqs=[0, 1], extra=[], now=now)
        assert list(answers) == [1] and '"by":"fran"' in (answers[1] or "")
        assert (await store.get_run("r1")).status == "running"  # not parked: it goes on
        assert await store.park(run_id="r1", fence=claim.fence, seqs=[0], extra=[], now=now) == {}
        parked = await store.get_run("r1")
        assert parked.status == "waiting" and parked.waiting_for == "approval:legal"
    finally:
        await store.close()
