"""The email channel against a real SMTP server (aiosmtpd) started by the test: mails to
each recipient's address from the directory, text and HTML parts, signed approval
links that only show the request; refusals, outages and bad credentials."""

from __future__ import annotations

from typing import Any

import pytest

from signoff import Context, Engine
from signoff.channels import Contacts, EmailChannel, Route
from signoff.server import auth
from signoff.testing import FakeClock
from tests.channels.receivers import SmtpInbox, serve_smtp
from tests.ports import free_port

LINK_SECRET = "a-link-secret-of-32-bytes-000000"
CONTACTS = Contacts(
    {"finance": ["bob"]},
    addresses={"alice": {"email": "alice@example.com"}, "bob": {"email": "bob@example.com"}},
)


def mail_engine(url: str, clock: FakeClock, channel: EmailChannel, **route: Any) -> Engine:
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
            proposed={"amount": amount},
            approvers=["alice", "role:finance"],
        )
        return str(d.status)

    return engine


async def start_waiting(engine: Engine, amount: int = 70) -> str:
    await engine.start_worker()
    await engine._stop_deliverer()  # the test delivers, step by step
    run = await engine.start("expense", amount)
    await engine.settle(run.id)
    await engine.stop_worker()
    return run.id


async def test_each_approver_gets_a_mail_with_a_signed_link(
    store_url: str, clock: FakeClock, smtp: tuple[SmtpInbox, int]
) -> None:
    inbox, port = smtp
    channel = EmailChannel(
        "mail",
        host="127.0.0.1",
        port=port,
        sender="signoff@example.com",
        base_url="https://approvals.example.com/",
        link_secret=LINK_SECRET,
    )
    engine = mail_engine(store_url, clock, channel, events=["approval.requested"])
    run_id = await start_waiting(engine)
    assert await engine.deliver_notifications() == 1
    assert sorted(str(m["To"]) for m in inbox.mails) == ["alice@example.com", "bob@example.com"]
    [d] = await engine.deliveries()
    assert d.status == "delivered" and set(d.recipients) == {"alice", "bob", "role:finance"}
    for mail in inbox.mails:
        assert mail["Subject"] == "Approval needed: Expense of 70 <EUR>"
        assert mail["Message-ID"].startswith(f"<{d.id}.")
        text = mail.get_body(("plain",)).get_content()
        page = mail.get_body(("html",)).get_content()
        assert "Expense of 70 <EUR>" in text and "Expense of 70 &lt;EUR&gt;" in page
        assert f"run {run_id}" in text
        link = text.split("Open the request: ")[1].split()[0]
        assert link.startswith("https://approvals.example.com/links/")
        signed = auth.verify_link(LINK_SECRET.encode(), link.rsplit("/", 1)[1])
        person = str(mail["To"]).split("@")[0]
        assert (signed.run_id, signed.key, signed.approver) == (run_id, "finance", person)
        assert signed.action == "any" and signed.round == 1
        assert f'href="{link}"' in page
    assert (await engine.get_run(run_id)).status == "waiting"  # a mail decides nothing
    await engine.close()


async def test_without_a_link_secret_the_link_is_the_inbox_page(
    tmp_path: Any, clock: FakeClock, smtp: tuple[SmtpInbox, int]
) -> None:
    inbox, port = smtp
    channel = EmailChannel(
        "mail", host="127.0.0.1", port=port, sender="s@example.com", base_url="http://x"
    )
    engine = mail_engine(f"sqlite:///{tmp_path / 'm.db'}", clock, channel, to=["alice"])
    run_id = await start_waiting(engine)
    await engine.deliver_notifications()
    [mail] = inbox.mails
    text = mail.get_body(("plain",)).get_content()
    assert f"Open the request: http://x/inbox/approval?run={run_id}&key=finance" in text
    await engine.close()


async def test_refusals_outages_and_recovery(
    tmp_path: Any, clock: FakeClock, smtp: tuple[SmtpInbox, int]
) -> None:
    inbox, port = smtp
    inbox.fail_next = 1
    channel = EmailChannel("mail", host="127.0.0.1", port=port, sender="s@example.com")
    engine = mail_engine(f"sqlite:///{tmp_path / 'm.db'}", clock, channel, to=["alice"])
    await start_waiting(engine)
    await engine.deliver_notifications()
    [d] = await engine.deliveries()
    assert (
        d.status == "pending" and d.last_error == f"the SMTP server 127.0.0.1:{port} answered 451"
    )
    clock.advance(5)
    await engine.deliver_notifications()
    [d] = await engine.deliveries()
    assert d.status == "delivered" and len(inbox.mails) == 1
    await engine.close()


async def test_a_dropped_server_is_retried_and_a_refused_address_is_dead(
    tmp_path: Any, clock: FakeClock
) -> None:
    port = free_port()  # nobody listens yet
    channel = EmailChannel("mail", host="127.0.0.1", port=port, sender="s@example.com")
    engine = mail_engine(f"sqlite:///{tmp_path / 'm.db'}", clock, channel, to=["alice", "bob"])
    await start_waiting(engine)
    await engine.deliver_notifications()
    [d] = await engine.deliveries()
    assert d.status == "pending"
    assert d.last_error == f"cannot reach the SMTP server 127.0.0.1:{port}: ConnectionRefusedError"
    inbox = SmtpInbox()
    inbox.refuse = {"alice@example.com", "bob@example.com"}
    controller = serve_smtp(inbox, port)
    try:
        clock.advance(5)
        await engine.deliver_notifications()
    finally:
        controller.stop()
    [d] = await engine.deliveries()
    assert d.status == "dead" and "refused alice@example.com, bob@example.com" in (
        d.last_error or ""
    )
    await engine.close()


async def test_no_address_is_dead_at_once_and_says_who(tmp_path: Any, clock: FakeClock) -> None:
    channel = EmailChannel("mail", host="127.0.0.1", port=free_port(), sender="s@example.com")
    engine = mail_engine(f"sqlite:///{tmp_path / 'm.db'}", clock, channel, to=["carol"])
    await start_waiting(engine)
    await engine.deliver_notifications()
    [d] = await engine.deliveries()
    assert d.status == "dead" and d.attempts == 1
    assert d.last_error and d.last_error.startswith("no email address for carol")
    await engine.close()


async def test_bad_credentials_never_show_the_password(tmp_path: Any, clock: FakeClock) -> None:
    from aiosmtpd.smtp import AuthResult

    def authenticator(*args: Any) -> AuthResult:
        return AuthResult(success=False)

    inbox, port = SmtpInbox(), free_port()
    controller = serve_smtp(inbox, port, authenticator=authenticator, auth_require_tls=False)
    password = "hunter2-very-secret"
    channel = EmailChannel(
        "mail", host="127.0.0.1", port=port, sender="s@example.com", username="u",
        password=password, timeout=2,
    )  # fmt: skip
    engine = mail_engine(f"sqlite:///{tmp_path / 'm.db'}", clock, channel, to=["alice"])
    try:
        run_id = await start_waiting(engine)
        await engine.deliver_notifications()
    finally:
        controller.stop()
    [d] = await engine.deliveries()
    shown = repr(d) + repr(await engine.history(run_id)) + repr(channel)
    assert d.status == "pending" and d.last_error and password not in shown
    assert d.last_error.startswith(f"the SMTP server 127.0.0.1:{port} refused the login of 'u'")
    assert inbox.mails == []
    await engine.close()


def test_misconfigured_email_fails_at_construction() -> None:
    from signoff import errors

    with pytest.raises(errors.InvalidArgument, match="sender"):
        EmailChannel("mail", host="h", sender="nobody")
    with pytest.raises(errors.InvalidArgument, match="username and password"):
        EmailChannel("mail", host="h", sender="a@b", username="u")
    with pytest.raises(errors.InvalidArgument, match="base_url"):
        EmailChannel("mail", host="h", sender="a@b", link_secret=LINK_SECRET)
