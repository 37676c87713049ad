"""The Slack channel against a real HTTP server standing in for Slack's Web API, and the
interactivity endpoint fed requests signed exactly as Slack signs them: a message with
buttons per approver, a click that decides, the message updated in place however the
approval ends; forged, stale and replayed requests, people who may not decide, stale
buttons and double clicks decide nothing more."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import Context, Engine, errors
from signoff.channels import Contacts, Message, Route, SlackChannel
from signoff.server import create_app
from signoff.testing import FakeClock, fire_due_timers
from tests.channels.slack_standin import (
    SIGNING_SECRET,
    TOKEN,
    SlackStandIn,
    buttons,
    click,
    text_of,
)

CONTACTS = Contacts(
    {"finance": ["bob"]},
    addresses={
        "alice": {"slack": "UALICE"},
        "bob": {"slack": "UBOB"},
        "mallory": {"slack": "UMALLORY"},
    },
)
INBOX = "https://signoff.example.com"


def slack_channel(standin: SlackStandIn, **kw: Any) -> SlackChannel:
    return SlackChannel(
        "slack",
        token=TOKEN,
        signing_secret=SIGNING_SECRET,
        base_url=standin.api_url,
        inbox_url=INBOX,
        timeout=5,
        **kw,
    )


def slack_engine(url: str, clock: FakeClock, channel: SlackChannel, **route: Any) -> Engine:
    engine = Engine(
        url,
        clock=clock,
        poll_interval=0.01,
        lease="5s",
        directory=CONTACTS,
        notifications=[Route(channel, **route)],
    )

    @engine.workflow(name="expense")
    async def expense(ctx: Context, amount: int) -> str:
        d = await ctx.approval(
            "finance",
            summary=f"Expense of {amount} <EUR>",
            proposed={"amount": amount, "vendor": "ACME & Sons"},
            approvers=["alice", "role:finance"],
            timeout="1h",
        )
        return str(d.status)

    return engine


@dataclass
class Setup:
    engine: Engine
    slack: SlackStandIn
    client: httpx.AsyncClient
    run_id: str

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post("/slack/interactions", content=body, headers=headers)

    def value(self) -> str:
        """What the buttons of the first message carry."""
        return str(buttons(self.slack.posts()[0])["signoff_approve"]["value"])

    async def decisions(self) -> list[str]:
        history = await self.engine.history(self.run_id)
        return [str(e.data) for e in history if e.type == "approval_decided"]


@pytest.fixture
async def setup(store_url: str, clock: FakeClock, slack: SlackStandIn) -> AsyncIterator[Setup]:
    engine = slack_engine(store_url, clock, slack_channel(slack))
    await engine.start_worker()
    await engine._stop_deliverer()  # the test delivers, step by step
    run = await engine.start("expense", 70)
    await engine.settle(run.id)
    assert await engine.deliver_notifications() == 1
    app = create_app(engine, run_worker=False)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    yield Setup(engine, slack, client, run.id)
    await client.aclose()
    await app.state.hub.close()
    await engine.close()


async def wait_replies(slack: SlackStandIn, count: int) -> list[str]:
    for _ in range(250):
        if len(slack.replies()) >= count:
            break
        await asyncio.sleep(0.02)
    return slack.replies()


# the message ---------------------------------------------------------------------------


async def test_each_approver_gets_a_message_with_buttons(setup: Setup) -> None:
    posts = setup.slack.posts()
    assert sorted(p.args["channel"] for p in posts) == ["UALICE", "UBOB"]
    approval = (await setup.engine.approvals(setup.run_id))[0]
    for post in posts:
        assert post.auth == f"Bearer {TOKEN}"
        assert post.args["text"] == "Approval needed: Expense of 70 <EUR>"
        shown = text_of(post)
        assert "*Expense of 70 &lt;EUR&gt;*" in shown  # escaped for mrkdwn
        assert "*amount*\n70" in shown and "*vendor*\nACME &amp; Sons" in shown
        assert f"run `{setup.run_id}`" in shown
        found = buttons(post)
        assert set(found) == {"signoff_approve", "signoff_reject", "signoff_open"}
        assert found["signoff_approve"]["style"] == "primary"
        value = json.loads(found["signoff_reject"]["value"])
        assert value == {
            "run": setup.run_id,
            "key": "finance",
            "round": 1,
            "digest": approval.digest,
        }
        assert found["signoff_open"]["url"] == (
            f"{INBOX}/inbox/approval?run={setup.run_id}&key=finance"
        )
    [d] = await setup.engine.deliveries()
    assert d.status == "delivered"
    assert (await setup.engine.get_run(setup.run_id)).status == "waiting"


async def test_a_signed_click_decides_and_the_messages_show_who(setup: Setup) -> None:
    body, headers = click(setup.value(), user="UALICE", response_url=setup.slack.response_url())
    res = await setup.post(body, headers)
    assert res.status_code == 200 and res.content == b""
    assert (await setup.engine.result(setup.run_id, timeout=5)) == "approved"
    [approval] = await setup.engine.approvals(setup.run_id)
    assert approval.decided_by == "alice"
    await setup.engine.deliver_notifications()
    updates = setup.slack.of("chat.update")
    posted = {(p.answer or {})["channel"]: (p.answer or {})["ts"] for p in setup.slack.posts()}
    assert {(u.args["channel"], u.args["ts"]) for u in updates} == set(posted.items())
    for update in updates:
        assert "signoff_approve" not in buttons(update)  # no buttons any more
        assert "signoff_open" in buttons(update)
        assert ":white_check_mark: Approved by *alice*" in text_of(update)
        assert update.args["text"] == "Expense of 70 <EUR>: approved"
    assert len(setup.slack.posts()) == 2  # updated in place, nothing new posted
    assert await wait_replies(setup.slack, 0) == []


async def test_decided_elsewhere_updates_the_messages(setup: Setup) -> None:
    await setup.engine.reject(setup.run_id, "finance", by="bob", reason="over budget")
    await setup.engine.deliver_notifications()
    updates = setup.slack.of("chat.update")
    assert len(updates) == 2
    assert all(":x: Rejected by *bob*: over budget" in text_of(u) for u in updates)
    assert all("signoff_reject" not in buttons(u) for u in updates)
    await setup.engine.deliver_notifications()
    assert len(setup.slack.of("chat.update")) == 2  # nothing is due twice


async def test_expiry_removes_the_buttons(setup: Setup, clock: FakeClock) -> None:
    clock.advance(3601)
    await fire_due_timers(setup.engine)
    await setup.engine.deliver_notifications()
    updates = setup.slack.of("chat.update")
    assert len(updates) == 2
    for update in updates:
        assert ":hourglass: Expired" in text_of(update)
        assert set(buttons(update)) == {"signoff_open"}
    body, headers = click(setup.value(), user="UBOB", response_url=setup.slack.response_url())
    assert (await setup.post(body, headers)).status_code == 200
    [reply] = await wait_replies(setup.slack, 1)
    assert reply == "This request is already expired; nothing was decided."


# requests that decide nothing ------------------------------------------------------------


async def test_forged_stale_and_unsigned_requests_are_refused(setup: Setup) -> None:
    url = setup.slack.response_url()
    forged = click(setup.value(), user="UALICE", response_url=url, secret="x" * 32)
    stale = click(setup.value(), user="UALICE", response_url=url, timestamp=1_600_000_000)
    body, headers = click(setup.value(), user="UALICE", response_url=url)
    tampered = body.replace(b"signoff_approve", b"signoff_reject")
    unsigned = {k: v for k, v in headers.items() if k != "x-slack-signature"}
    for b, h in (forged, stale, (tampered, headers), (body, unsigned)):
        res = await setup.post(b, h)
        assert res.status_code == 401 and res.json()["code"] == "bad_signature"
    assert await setup.decisions() == []
    assert (await setup.engine.get_run(setup.run_id)).status == "waiting"


async def test_a_replayed_request_decides_nothing_more(setup: Setup) -> None:
    rejected = click(
        setup.value(),
        user="UBOB",
        action_id="signoff_reject",
        response_url=setup.slack.response_url(),
    )
    approved = click(setup.value(), user="UALICE", response_url=setup.slack.response_url())
    assert (await setup.post(*approved)).status_code == 200
    assert (await setup.post(*approved)).status_code == 200  # replayed as it was
    await setup.post(*rejected)
    await setup.post(*rejected)
    assert len(await setup.decisions()) == 1
    [approval] = await setup.engine.approvals(setup.run_id)
    assert (approval.status.value, approval.decided_by) == ("approved", "alice")
    assert await wait_replies(setup.slack, 1) == [
        "This request is already approved by alice; nothing was decided."
    ]  # the replay of bob's is answered by nobody


@pytest.mark.parametrize(
    ("user", "reply"),
    [
        ("UNOBODY", "signoff does not know your Slack account, so nothing was decided."),
        ("UMALLORY", "You may not decide this request ("),
    ],
)
async def test_a_slack_user_who_may_not_decide_gets_an_ephemeral_refusal(
    setup: Setup, user: str, reply: str
) -> None:
    body, headers = click(setup.value(), user=user, response_url=setup.slack.response_url())
    res = await setup.post(body, headers)
    assert res.status_code == 200
    [text] = await wait_replies(setup.slack, 1)
    assert text.startswith(reply)
    [response] = setup.slack.of("response")
    assert response.args["response_type"] == "ephemeral"
    assert response.args["replace_original"] is False
    assert await setup.decisions() == []
    assert (await setup.engine.get_run(setup.run_id)).status == "waiting"


async def test_a_button_for_a_changed_request_decides_nothing(setup: Setup) -> None:
    value = json.loads(setup.value())
    for changed in ({**value, "digest": "0" * 64}, {**value, "round": 2}):
        body, headers = click(
            json.dumps(changed), user="UALICE", response_url=setup.slack.response_url()
        )
        assert (await setup.post(body, headers)).status_code == 200
    replies = await wait_replies(setup.slack, 2)
    assert (
        replies
        == [
            "This request changed since this message was posted; nothing was decided. Open it "
            f"in the inbox: {INBOX}/inbox/approval?run={setup.run_id}&key=finance"
        ]
        * 2
    )
    assert await setup.decisions() == []


async def test_a_double_click_and_slack_retries_make_one_decision(setup: Setup) -> None:
    url = setup.slack.response_url()
    requests = [click(setup.value(), user="UALICE", response_url=url) for _ in range(3)]
    retry = click(setup.value(), user="UALICE", response_url=url)
    retry[1]["x-slack-retry-num"] = "1"
    retry[1]["x-slack-retry-reason"] = "http_timeout"
    answers = await asyncio.gather(*(setup.post(b, h) for b, h in [*requests, retry]))
    assert [a.status_code for a in answers] == [200] * 4
    assert len(await setup.decisions()) == 1
    assert (await setup.engine.result(setup.run_id, timeout=5)) == "approved"


async def test_other_interactions_are_acknowledged_and_ignored(setup: Setup) -> None:
    body, headers = click(setup.value(), user="UALICE", action_id="signoff_open", response_url="x")
    assert (await setup.post(body, headers)).status_code == 200
    assert await setup.decisions() == []


# more events, failures, configuration ------------------------------------------------------


async def test_votes_and_escalation_update_in_place_and_reach_the_added(
    tmp_path: Path, clock: FakeClock, slack: SlackStandIn
) -> None:
    engine = Engine(
        f"sqlite:///{tmp_path / 's.db'}",
        clock=clock,
        poll_interval=0.01,
        directory=Contacts({"finance": ["bob"]}, addresses={
            "alice": {"slack": "UALICE"}, "bob": {"slack": "UBOB"}, "carol": {"slack": "UCAROL"},
        }),
        notifications=[Route(slack_channel(slack))],
    )  # fmt: skip

    @engine.workflow(name="board")
    async def board(ctx: Context) -> str:
        d = await ctx.approval(
            "board",
            summary="Big spend",
            approvers=["alice", "carol"],
            quorum=2,
            escalate_after="90m",
            escalate_to=["role:finance"],
        )
        return str(d.status)

    async with engine:
        await engine._stop_deliverer()
        run = await engine.start("board")
        await engine.settle(run.id)
        await engine.deliver_notifications()
        assert sorted(p.args["channel"] for p in slack.posts()) == ["UALICE", "UCAROL"]
        await engine.approve(run.id, "board", by="alice")
        await engine.deliver_notifications()
        votes = slack.of("chat.update")
        assert len(votes) == 2
        assert all("alice voted approved: 1 of 2 needed" in text_of(u) for u in votes)
        assert all("signoff_approve" in buttons(u) for u in votes)  # still open
        clock.advance(5401)
        await fire_due_timers(engine)
        await engine.deliver_notifications()
        [to_bob] = [p for p in slack.posts() if p.args["channel"] == "UBOB"]
        assert "signoff_approve" in buttons(to_bob) and "Escalated to role:finance" in text_of(
            to_bob
        )
        assert len(slack.of("chat.update")) == 4  # alice's and carol's say so too
        await engine.approve(run.id, "board", by="bob")
        assert await engine.result(run.id, timeout=5) == "approved"
        await engine.deliver_notifications()
    final = slack.of("chat.update")[-3:]
    assert sorted(u.args["channel"] for u in final) == ["DALICE", "DBOB", "DCAROL"]
    assert all("Approved by *bob*" in text_of(u) for u in final)
    await engine.close()


async def test_slack_errors_are_retried_or_dead(
    tmp_path: Path, clock: FakeClock, slack: SlackStandIn
) -> None:
    engine = slack_engine(f"sqlite:///{tmp_path / 's.db'}", clock, slack_channel(slack))
    slack.errors = ["ratelimited"]
    await engine.start_worker()
    await engine._stop_deliverer()
    run = await engine.start("expense", 5)
    await engine.settle(run.id)
    await engine.deliver_notifications()
    [d] = await engine.deliveries()
    assert d.status == "pending"
    assert d.last_error == "Slack answered chat.postMessage for UALICE: ratelimited"
    assert [p.args["channel"] for p in slack.posts()] == ["UBOB"]  # bob's is out
    clock.advance(5)
    slack.errors = ["channel_not_found"]
    await engine.deliver_notifications()  # again to alice only, who cannot be reached
    [d] = await engine.deliveries()
    assert d.status == "dead" and d.attempts == 2 and TOKEN not in repr(d)
    assert d.last_error == "Slack answered chat.postMessage for UALICE: channel_not_found"
    assert len(slack.of("chat.postMessage")) == 3 and len(slack.posts()) == 1
    await engine.close()


async def test_no_message_to_update_yet_is_retried_not_lost(
    tmp_path: Path, clock: FakeClock, slack: SlackStandIn
) -> None:
    """A decision delivered before its request: the people get the outcome, and the
    request, delivered late, posts nothing over it."""
    engine = slack_engine(f"sqlite:///{tmp_path / 's.db'}", clock, slack_channel(slack))
    await engine.start_worker()
    await engine._stop_deliverer()
    run = await engine.start("expense", 5)
    await engine.settle(run.id)
    await engine.approve(run.id, "finance", by="alice")
    by_event = {d.event: d for d in await engine.deliveries()}
    channel = engine.routing.channels["slack"]
    channel.attach(engine.store)
    for event in ("approval.decided", "approval.requested"):
        d = by_event[event]
        await channel.send(Message(d, {"alice": "UALICE", "bob": "UBOB"}))
    posts = slack.posts()
    assert len(posts) == 2 and slack.of("chat.update") == []
    assert all(
        "Approved by *alice*" in text_of(p) and "signoff_approve" not in buttons(p) for p in posts
    )
    await engine.close()


def test_misconfigured_slack_fails_at_construction() -> None:
    with pytest.raises(errors.InvalidArgument, match="bot token"):
        SlackChannel(token="")
    with pytest.raises(errors.InvalidArgument, match="bot token"):
        SlackChannel(token="not-a-token")
    with pytest.raises(errors.InvalidArgument, match="base_url must be an http"):
        SlackChannel(token=TOKEN, base_url="slack.com/api")
    with pytest.raises(errors.InvalidArgument, match="Signing Secret"):
        SlackChannel(token=TOKEN, signing_secret="short")
    with pytest.raises(errors.InvalidArgument, match="inbox_url"):
        SlackChannel(token=TOKEN, inbox_url="signoff.example.com")
    channel = SlackChannel(token=TOKEN, signing_secret=SIGNING_SECRET)
    assert TOKEN not in repr(channel) and set(channel.secrets()) == {TOKEN, SIGNING_SECRET}


async def test_without_a_signing_secret_there_is_no_endpoint(tmp_path: Path) -> None:
    engine = Engine(
        f"sqlite:///{tmp_path / 's.db'}", notifications=[Route(SlackChannel(token=TOKEN))]
    )
    app = create_app(engine, run_worker=False)
    assert "/slack/interactions" not in {getattr(r, "path", "") for r in app.routes}
    await engine.close()


def test_importing_signoff_does_not_import_slack_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, signoff, signoff.channels, signoff.server; print('slack_sdk' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
