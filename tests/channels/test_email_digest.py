"""The email digest against a real SMTP server (aiosmtpd): a channel with `digest="1h"`
holds its messages in the outbox until their hour ends, then mails each person once,
listing every request with its signed single-use link; every message is marked
delivered by that one attempt. A worker that dies before the digest is due, or in the
middle of sending it, loses nothing: the held messages are in the database."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from signoff import Context, Engine, errors
from signoff.channels import Contacts, EmailChannel, Route
from signoff.server import auth
from signoff.testing import FakeClock, fire_due_timers
from tests.channels.receivers import SmtpInbox

LINK_SECRET = "a-link-secret-of-32-bytes-000000"
BASE = "https://approvals.example.com"
CONTACTS = Contacts(
    addresses={"alice": {"email": "alice@example.com"}, "bob": {"email": "bob@example.com"}},
)
HOUR = 3600.0


def digest_engine(url: str, clock: FakeClock, port: int) -> Engine:
    channel = EmailChannel(
        "mail", host="127.0.0.1", port=port, sender="signoff@example.com", base_url=BASE,
        link_secret=LINK_SECRET, digest="1h",
    )  # fmt: skip
    engine = Engine(
        url, clock=clock, poll_interval=0.01, lease="5s", directory=CONTACTS,
        notifications=[Route(channel, events=["approval.requested", "approval.reminder"])],
    )  # fmt: skip

    @engine.workflow(name="expense")
    async def expense(ctx: Context, amount: int, who: str) -> str:
        d = await ctx.approval(
            "finance", summary=f"Expense of {amount}", approvers=[who], remind_every="45m"
        )
        return str(d.status)

    return engine


async def request(engine: Engine, *amounts: int, who: str = "alice") -> list[str]:
    await engine.start_worker()
    await engine._stop_deliverer()  # the test delivers, step by step
    ids = []
    for amount in amounts:
        run = await engine.start("expense", amount, who)
        await engine.settle(run.id)
        ids.append(run.id)
    await engine.stop_worker()
    return ids


def links(text: str) -> list[auth.Link]:
    found = [w for w in text.split() if w.startswith(f"{BASE}/links/")]
    return [auth.verify_link(LINK_SECRET.encode(), w.rsplit("/", 1)[1]) for w in found]


async def test_three_requests_in_the_hour_make_one_mail(
    store_url: str, clock: FakeClock, smtp: tuple[SmtpInbox, int]
) -> None:
    inbox, port = smtp
    engine = digest_engine(store_url, clock, port)
    ids = await request(engine, 10, 20)
    clock.advance("20m")
    ids += await request(engine, 30)
    assert await engine.deliver_notifications() == 0  # held until the hour ends
    held = await engine.deliveries()
    assert [d.status for d in held] == ["pending"] * 3 and {d.attempts for d in held} == {0}
    assert {d.due_at.timestamp() for d in held} == {1_800_000_000.0 + HOUR}
    assert inbox.mails == []

    clock.advance("40m")  # the hour ends
    assert await engine.deliver_notifications() == 3
    [mail] = inbox.mails
    assert mail["To"] == "alice@example.com"
    assert mail["Subject"] == "3 notifications, 3 waiting for you"
    assert mail["Message-ID"].startswith("<digest.")
    text = mail.get_body(("plain",)).get_content()
    for n, amount in enumerate((10, 20, 30), 1):
        assert f"{n}. Approval needed: Expense of {amount}" in text
    signed = links(text)
    assert sorted(s.run_id for s in signed) == sorted(ids)
    assert {(s.key, s.approver, s.action) for s in signed} == {("finance", "alice", "any")}
    assert mail.get_body(("html",)).get_content().count(f'href="{BASE}/links/') == 3
    done = await engine.deliveries()
    assert {d.status for d in done} == {"delivered"}
    assert {len(d.history) for d in done} == {1}  # one attempt each: the digest's
    assert len({d.history[0].at for d in done}) == 1
    await engine.close()


async def test_after_the_interval_the_next_digest_and_people_apart(
    tmp_path: Path, clock: FakeClock, smtp: tuple[SmtpInbox, int]
) -> None:
    inbox, port = smtp
    engine = digest_engine(f"sqlite:///{tmp_path / 'd.db'}", clock, port)
    await request(engine, 10)
    await request(engine, 20, who="bob")
    clock.advance("1h")
    assert await engine.deliver_notifications() == 2
    # one message each: the plain mail, not a list of one
    assert sorted(m["Subject"] for m in inbox.mails) == [
        "Approval needed: Expense of 10",
        "Approval needed: Expense of 20",
    ]
    await request(engine, 30, 40)  # the next hour: a digest of its own
    # the reminders of the first two (every 45m) fall into this hour too
    clock.advance("1h")
    await fire_due_timers(engine)
    await engine.deliver_notifications()
    assert len(inbox.mails) == 4
    to_alice = next(m for m in inbox.mails[2:] if m["To"] == "alice@example.com")
    text = to_alice.get_body(("plain",)).get_content()
    assert "Approval needed: Expense of 30" in text and "Approval needed: Expense of 40" in text
    assert "Reminder, approval needed: Expense of 10" in text
    for d in await engine.deliveries():  # reminders written now wait for the next hour
        due = d.due_at.timestamp() <= clock.time()
        assert d.status == ("delivered" if due else "pending"), d
    await engine.close()


async def test_a_worker_gone_before_or_during_the_digest_loses_nothing(
    tmp_path: Path, clock: FakeClock, smtp: tuple[SmtpInbox, int]
) -> None:
    inbox, port = smtp
    url = f"sqlite:///{tmp_path / 'c.db'}"
    first = digest_engine(url, clock, port)
    await request(first, 10, 20, 30)
    await first.close()  # gone with its digest held: nothing was in memory

    clock.advance("1h")
    second = digest_engine(url, clock, port)
    # a worker claims the digest and dies in the middle of sending it
    claimed = await second.store.claim_deliveries(
        owner="dead-worker", channels=["mail"], limit=100, now=clock.time(),
        lease_until=clock.time() + 30,
    )  # fmt: skip
    assert len(claimed) == 3
    assert await second.deliver_notifications() == 0  # its lease holds them
    clock.advance("31s")
    assert await second.deliver_notifications() == 3  # taken again, together
    [mail] = inbox.mails
    assert mail["Subject"] == "3 notifications, 3 waiting for you"
    done = await second.deliveries()
    assert {(d.status, d.attempts) for d in done} == {("delivered", 2)}
    await second.close()


async def test_a_failed_digest_is_retried_whole(
    tmp_path: Path, clock: FakeClock, smtp: tuple[SmtpInbox, int]
) -> None:
    inbox, port = smtp
    inbox.fail_next = 1
    engine = digest_engine(f"sqlite:///{tmp_path / 'f.db'}", clock, port)
    await request(engine, 10, 20)
    clock.advance("1h")
    assert await engine.deliver_notifications() == 2
    assert {(d.status, d.last_error) for d in await engine.deliveries()} == {
        ("pending", f"the SMTP server 127.0.0.1:{port} answered 451")
    }
    clock.advance("5s")
    assert await engine.deliver_notifications() == 2
    assert len(inbox.mails) == 1 and {d.status for d in await engine.deliveries()} == {"delivered"}
    await engine.close()


def test_a_digest_shorter_than_a_minute_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument, match="digest"):
        EmailChannel("mail", host="h", sender="a@b", digest="10s")
    assert EmailChannel("mail", host="h", sender="a@b", digest="1d").digest == 86400
    assert EmailChannel("mail", host="h", sender="a@b").digest is None


async def test_a_channel_of_ones_own_with_a_digest_gets_them_together(
    tmp_path: Path, clock: FakeClock
) -> None:
    from signoff.channels import Channel, Message

    class Batches(Channel):
        name = "batches"
        digest = 60.0

        def __init__(self) -> None:
            self.batches: list[list[str]] = []

        async def send(self, message: Message) -> None:  # pragma: no cover - not used
            raise AssertionError("a digest channel gets send_digest")

        async def send_digest(self, messages: Sequence[Message]) -> None:
            self.batches.append(sorted(m.delivery.run_id for m in messages))

    channel = Batches()
    engine = Engine(
        f"sqlite:///{tmp_path / 'b.db'}", clock=clock, directory=CONTACTS,
        notifications=[Route(channel, events=["run.completed"])],
    )  # fmt: skip

    @engine.workflow(name="noop")
    async def noop(ctx: Context) -> None:
        return None

    await engine.start_worker()
    await engine._stop_deliverer()
    runs = [await engine.start("noop") for _ in range(3)]
    for run in runs:
        await engine.settle(run.id)
    assert await engine.deliver_notifications() == 0 and channel.batches == []
    clock.advance("1m")
    assert await engine.deliver_notifications() == 3
    assert channel.batches == [sorted(r.id for r in runs)]
    await engine.close()
