"""Email over SMTP (stdlib `smtplib` in a thread): one mail per recipient, with a text
and an HTML part, and for an approval that can still be decided a link to it.

The link is a signed single-use approval link (`/links/TOKEN`, the server's link
machinery) when the channel has the server's `link_secret`, else the inbox page of the
approval; either way opening it only shows the request and a form: GET never decides.
Each mail's `Message-ID` derives from the outbox message id, so a retry re-sends the
same message (mail clients and archives collapse duplicates).

A question (`ctx.ask`) is answered, not approved: its mails say so and link to its inbox
page, where the answer form is. `digest="1h"`: the outbox holds the channel's messages
until their hour ends, then each person gets one mail listing them all (each with its
link), and every message is marked delivered by that one attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import smtplib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

from signoff import durations, errors, outbox
from signoff.channels.base import Channel, DeliveryError, Message

_OPEN = (outbox.APPROVAL_REQUESTED, outbox.APPROVAL_REMINDER, outbox.APPROVAL_ESCALATED)
_SUBJECTS = {
    outbox.APPROVAL_REQUESTED: "Approval needed: {summary}",
    outbox.APPROVAL_REMINDER: "Reminder, approval needed: {summary}",
    outbox.APPROVAL_ESCALATED: "Escalated to you: {summary}",
    outbox.APPROVAL_VOTED: "Vote recorded: {summary}",
    outbox.APPROVAL_DECIDED: "Decided ({status}): {summary}",
    outbox.APPROVAL_TIMED_OUT: "Timed out ({status}): {summary}",
    outbox.APPROVAL_EXPIRED: "Expired: {summary}",
    outbox.RUN_COMPLETED: "Run completed: {workflow} {run_id}",
    outbox.RUN_FAILED: "Run failed: {workflow} {run_id}",
    outbox.RUN_BLOCKED: "Run blocked: {workflow} {run_id}",
}
# a question (`ctx.ask`) is answered, not approved
_QUESTION_SUBJECTS = {
    outbox.APPROVAL_REQUESTED: "Question for you: {summary}",
    outbox.APPROVAL_REMINDER: "Reminder, answer needed: {summary}",
    outbox.APPROVAL_ESCALATED: "Escalated to you, answer needed: {summary}",
}
_ANSWERS = {"edited": "answered", "rejected": "declined"}


@dataclass(frozen=True, slots=True)
class _Item:
    """What one notification says to one person: subject, lines, and a link."""

    subject: str
    lines: list[str]
    link: str | None
    label: str  # what the link is for ("Open the request", "Answer in the inbox")


class EmailChannel(Channel):
    """Mail routed events to each recipient's `email` address (from the directory)."""

    address_kind = "email"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        sender: str,
        port: int = 25,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float = 10.0,
        base_url: str | None = None,
        link_secret: str | bytes | None = None,
        link_ttl: durations.Duration = "7d",
        digest: durations.Duration | None = None,
    ) -> None:
        if not host or not isinstance(port, int) or not 0 < port < 65536:
            raise errors.InvalidArgument(f"email channel {name!r}: give an SMTP host and port")
        if "@" not in (sender or ""):
            raise errors.InvalidArgument(f"email channel {name!r}: sender must be an address")
        if (username is None) != (password is None):
            raise errors.InvalidArgument(f"email channel {name!r}: give username and password")
        if isinstance(link_secret, str):
            link_secret = link_secret.encode()
        if link_secret is not None and (len(link_secret) < 16 or not base_url):
            raise errors.InvalidArgument(
                f"email channel {name!r}: signed links need base_url and a link_secret of at "
                "least 16 bytes (the server's SIGNOFF_LINK_SECRET)"
            )
        self.name = name
        self.host, self.port, self.sender = host, port, sender
        self._login = None if username is None else (username, password or "")
        self._starttls, self._ssl, self.timeout = starttls, use_ssl, timeout
        self._base = base_url.rstrip("/") if base_url else None
        self._link_secret = link_secret
        self._link_ttl = durations.to_seconds(link_ttl, "link_ttl")
        self.digest = None if digest is None else durations.to_seconds(digest, "digest")
        if self.digest is not None and self.digest < 60:
            raise errors.InvalidArgument(f"email channel {name!r}: digest must be at least 60s")

    def __repr__(self) -> str:
        return f"EmailChannel({self.name!r}, host={self.host!r}, port={self.port})"

    def secrets(self) -> Sequence[str]:
        found = [] if self._login is None else [self._login[1]]
        if self._link_secret is not None:
            found.append(self._link_secret.decode(errors="replace"))
        return found

    async def send(self, message: Message) -> None:
        people = message.addresses.items()
        mails = [self.compose(message, person, address) for person, address in people]
        await asyncio.to_thread(self._send_all, mails)

    async def send_digest(self, messages: Sequence[Message]) -> None:
        """One mail per address for the messages of a digest window (a message alone
        is mailed as it would be without a digest)."""
        for_address: dict[str, list[tuple[Message, str]]] = {}
        for message in messages:
            for person, address in message.addresses.items():
                for_address.setdefault(address, []).append((message, person))
        mails = [
            self.compose(*items[0], address)
            if len(items) == 1
            else self.compose_digest(items, address)
            for address, items in for_address.items()
        ]
        await asyncio.to_thread(self._send_all, mails)

    def compose(self, message: Message, person: str, address: str) -> EmailMessage:
        item = self._item(message, person)
        mail = self._mail(address, item.subject, f"<{message.id}.{_slug(person)}@signoff>")
        text = "\n".join(item.lines) + (f"\n\n{item.label}: {item.link}\n" if item.link else "\n")
        mail.set_content(text)
        mail.add_alternative(f"<html><body>{_html(item)}</body></html>", subtype="html")
        return mail

    def compose_digest(self, items: Sequence[tuple[Message, str]], address: str) -> EmailMessage:
        """One mail listing several notifications for one person, each with its link.
        Its Message-ID is made from theirs: the same on every retry."""
        shown = [self._item(message, person) for message, person in items]
        ids = sorted(message.id for message, _ in items)
        mark = hashlib.sha256(" ".join(ids).encode()).hexdigest()[:24]
        waiting = sum(1 for message, _ in items if _is_open(message.delivery))
        subject = f"{len(items)} notifications"
        if waiting:
            subject += f", {waiting} waiting for you"
        mail = self._mail(address, subject, f"<digest.{mark}.{_slug(items[0][1])}@signoff>")
        parts = []
        for n, item in enumerate(shown, 1):
            body = "\n".join(f"   {line}" for line in item.lines)
            link = f"\n   {item.label}: {item.link}" if item.link else ""
            parts.append(f"{n}. {item.subject}\n{body}{link}")
        mail.set_content("\n\n".join(parts) + "\n")
        page = "".join(f"<h3>{html.escape(i.subject)}</h3>{_html(i)}<hr>" for i in shown)
        mail.add_alternative(f"<html><body>{page}</body></html>", subtype="html")
        return mail

    def _mail(self, address: str, subject: str, message_id: str) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = subject
        mail["From"] = self.sender
        mail["To"] = address
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = message_id
        return mail

    def _item(self, message: Message, person: str) -> _Item:
        d = message.delivery
        data: dict[str, Any] = d.payload.get("data", {})
        decision = data.get("decision") or {}
        question = bool(data.get("question"))
        status = str(decision.get("status", ""))
        facts = {
            "summary": data.get("summary") or d.key or d.event,
            "status": _ANSWERS.get(status, status) if question else status,
            "workflow": d.workflow,
            "run_id": d.run_id,
        }
        subjects = {**_SUBJECTS, **_QUESTION_SUBJECTS} if question else _SUBJECTS
        subject = subjects.get(d.event, "{summary}").format(**facts)
        lines = _lines(d, data, decision, question)
        if not _is_open(d):
            return _Item(subject, lines, None, "")
        if question:  # the signed link's page approves or rejects; answers are in the inbox
            return _Item(subject, lines, self._inbox_link(d), "Answer in the inbox")
        return _Item(subject, lines, self._link(d, person, data), "Open the request")

    def _inbox_link(self, d: outbox.Delivery) -> str | None:
        if self._base is None:
            return None
        assert d.key is not None
        return f"{self._base}/inbox/approval?{urlencode({'run': d.run_id, 'key': d.key})}"

    def _link(self, d: outbox.Delivery, person: str, data: dict[str, Any]) -> str | None:
        if self._base is None:
            return None
        assert d.key is not None
        if self._link_secret is None:
            return f"{self._base}/inbox/approval?{urlencode({'run': d.run_id, 'key': d.key})}"
        from signoff.server import auth  # the server's link format, made where it is checked

        token, _ = auth.sign_link(
            self._link_secret,
            run_id=d.run_id,
            key=d.key,
            approver=person,
            action="any",
            expires_at=int(time.time() + self._link_ttl),
            round=data.get("round"),
            digest=data.get("digest"),
        )
        return f"{self._base}/links/{token}"

    def _send_all(self, mails: list[EmailMessage]) -> None:
        where = f"SMTP server {self.host}:{self.port}"
        try:
            smtp = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"cannot reach the {where}: {type(exc).__name__}") from None
        refused: list[str] = []
        try:
            if self._login is not None:
                self._log_in(smtp, where)
            for mail in mails:
                try:
                    smtp.send_message(mail)
                except smtplib.SMTPRecipientsRefused:
                    refused.append(str(mail["To"]))
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"the {where} answered {exc.smtp_code}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"the {where} failed: {type(exc).__name__}") from None
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
        if refused:
            raise DeliveryError(
                f"the {where} refused {', '.join(refused)}", permanent=len(refused) == len(mails)
            )

    def _connect(self) -> smtplib.SMTP:
        if self._ssl:
            context = ssl.create_default_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self._starttls:
                smtp.starttls(context=ssl.create_default_context())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _log_in(self, smtp: smtplib.SMTP, where: str) -> None:
        assert self._login is not None
        try:
            smtp.login(*self._login)
        except (OSError, smtplib.SMTPException) as exc:
            user = self._login[0]
            raise DeliveryError(
                f"the {where} refused the login of {user!r}: {type(exc).__name__}"
            ) from None


def _is_open(d: outbox.Delivery) -> bool:
    """Whether the notification asks for a decision (it gets a link)."""
    return d.event in _OPEN and bool(d.key)


def _html(item: _Item) -> str:
    body = "".join(f"<p>{html.escape(line)}</p>" for line in item.lines)
    if item.link:
        body += f'<p><a href="{html.escape(item.link, quote=True)}">{item.label}</a></p>'
    return body


def _lines(
    d: outbox.Delivery, data: dict[str, Any], decision: dict[str, Any], question: bool
) -> list[str]:
    lines = [str(data.get("summary") or d.event)]
    if d.key:
        kind = "Question" if question else "Approval"
        lines.append(f"{kind} {d.key} of {d.workflow} run {d.run_id}.")
    else:
        lines.append(f"{d.workflow} run {d.run_id}.")
    if data.get("proposed") is not None:
        lines.append(f"Proposed: {data['proposed']}")
    if data.get("deadline"):
        lines.append(f"Deadline: {data['deadline']}")
    if decision:
        who = f" by {decision['by']}" if decision.get("by") else ""
        status = str(decision.get("status"))
        lines.append(f"Outcome: {_ANSWERS.get(status, status) if question else status}{who}.")
        if decision.get("reason"):
            lines.append(f"Reason: {decision['reason']}")
    if d.event == outbox.RUN_FAILED:
        error = data.get("error") or {}
        lines.append(f"Error: {error.get('type')}: {error.get('message')}")
    if d.event == outbox.RUN_BLOCKED:
        lines.append(
            f"Its replay no longer matches its journal at position {data.get('seq')}: "
            f"recorded {data.get('expected')}, the code now calls {data.get('found')}. "
            "It resumes when code that replays it is deployed, or on retry."
        )
    return lines


def _slug(person: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in person)[:64] or "someone"
