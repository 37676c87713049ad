"""A question (`ctx.ask`) is answered, never approved: its Slack message has no Approve /
Reject buttons but "Answer in the inbox", and its mail says "answer"; the outbox
payload says `question: true` (webhook receivers see it too)."""

from __future__ import annotations

from typing import Any

from signoff import Context, Engine
from signoff.channels import Channel, Contacts, EmailChannel, Route, SlackChannel
from signoff.testing import FakeClock
from tests.channels.receivers import SmtpInbox
from tests.channels.slack_standin import (
    SIGNING_SECRET,
    TOKEN,
    SlackStandIn,
    buttons,
    text_of,
)

CONTACTS = Contacts(
    addresses={"alice": {"slack": "UALICE", "email": "alice@example.com"}},
)
INBOX = "https://signoff.example.com"


def ask_engine(url: str, clock: FakeClock, channel: Channel) -> Engine:
    engine = Engine(
        url,
        clock=clock,
        poll_interval=0.01,
        lease="5s",
        directory=CONTACTS,
        notifications=[Route(channel, to=["alice"])],
    )

    @engine.workflow(name="vendor")
    async def vendor(ctx: Context) -> str:
        answer = await ctx.ask("Which vendor <for> the order?", key="which", to="alice")
        return str(answer)

    return engine


async def ask(engine: Engine) -> str:
    await engine.start_worker()
    await engine._stop_deliverer()  # the test delivers, step by step
    run = await engine.start("vendor")
    await engine.settle(run.id)
    await engine.stop_worker()
    return run.id


async def test_a_question_in_slack_has_no_approve_buttons(
    store_url: str, clock: FakeClock, slack: SlackStandIn
) -> None:
    channel = SlackChannel(
        "slack", token=TOKEN, signing_secret=SIGNING_SECRET, base_url=slack.api_url,
        inbox_url=INBOX, timeout=5,
    )  # fmt: skip
    engine = ask_engine(store_url, clock, channel)
    run_id = await ask(engine)
    assert await engine.deliver_notifications() == 1
    [d] = await engine.deliveries()
    assert d.payload["data"]["question"] is True
    [post] = slack.posts()
    assert post.args["text"] == "Question for you: Which vendor <for> the order?"
    found = buttons(post)
    assert set(found) == {"signoff_open"}  # no signoff_approve / signoff_reject
    assert found["signoff_open"]["text"]["text"] == "Answer in the inbox"
    assert found["signoff_open"]["url"] == f"{INBOX}/inbox/approval?run={run_id}&key=which"
    await engine.answer(run_id, "which", "ACME", by="alice")
    await engine.deliver_notifications()
    [update] = slack.of("chat.update")
    assert "signoff_open" in buttons(update) and "signoff_approve" not in buttons(update)
    assert buttons(update)["signoff_open"]["text"]["text"] == "Open in the inbox"
    assert "Answered by *alice*" in text_of(update)
    await engine.close()


async def test_a_question_by_mail_says_answer(
    tmp_path: Any, clock: FakeClock, smtp: tuple[SmtpInbox, int]
) -> None:
    inbox, port = smtp
    channel = EmailChannel(
        "mail", host="127.0.0.1", port=port, sender="s@example.com", base_url=INBOX,
        link_secret="a-link-secret-of-32-bytes-000000",
    )  # fmt: skip
    engine = ask_engine(f"sqlite:///{tmp_path / 'q.db'}", clock, channel)
    run_id = await ask(engine)
    await engine.deliver_notifications()
    [mail] = inbox.mails
    assert mail["Subject"] == "Question for you: Which vendor <for> the order?"
    text = mail.get_body(("plain",)).get_content()
    assert f"Question which of vendor run {run_id}." in text
    # the signed link's page only approves or rejects: a question links to its inbox page
    assert f"Answer in the inbox: {INBOX}/inbox/approval?run={run_id}&key=which" in text
    assert "approv" not in text.replace("/inbox/approval", "").lower()
    assert ">Answer in the inbox</a>" in mail.get_body(("html",)).get_content()
    await engine.close()


async def test_an_approval_is_not_a_question(
    tmp_path: Any, clock: FakeClock, smtp: tuple[SmtpInbox, int]
) -> None:
    inbox, port = smtp
    channel = EmailChannel("mail", host="127.0.0.1", port=port, sender="s@example.com")
    engine = Engine(
        f"sqlite:///{tmp_path / 'a.db'}", clock=clock, directory=CONTACTS,
        notifications=[Route(channel, to=["alice"])],
    )  # fmt: skip

    @engine.workflow(name="pay")
    async def pay(ctx: Context) -> str:
        return str((await ctx.approval("ok", summary="Pay?", approvers=["alice"])).status)

    await engine.start_worker()
    await engine._stop_deliverer()
    run = await engine.start("pay")
    await engine.settle(run.id)
    await engine.deliver_notifications()
    [d] = await engine.deliveries()
    assert "question" not in d.payload["data"]
    assert inbox.mails[0]["Subject"] == "Approval needed: Pay?"
    await engine.close()
