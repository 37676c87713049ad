"""The stand-ins a channel test talks to, each a real server in the test's process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.channels.receivers import SmtpInbox, WebhookReceiver, serve_smtp, serve_webhooks
from tests.channels.slack_standin import SlackStandIn, serve_slack
from tests.ports import free_port


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    yield from serve_webhooks(WebhookReceiver())


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpInbox, int]]:
    """A real SMTP server (aiosmtpd) and its port."""
    inbox, port = SmtpInbox(), free_port()
    controller = serve_smtp(inbox, port)
    yield inbox, port
    controller.stop()


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    yield from serve_slack(SlackStandIn())
