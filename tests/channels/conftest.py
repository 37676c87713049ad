from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.channels.receivers import WebhookReceiver, serve_webhooks


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    yield from serve_webhooks(WebhookReceiver())
