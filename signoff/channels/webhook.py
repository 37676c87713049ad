"""Webhooks: a signed POST per event, following the Standard Webhooks specification.

Headers: `webhook-id` (the outbox message id, the same on every retry, so a receiver
dedupes), `webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`
(`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret's key), signed
by the `standardwebhooks` package (the `webhooks` extra: `pip install signoff[webhooks]`),
imported when a channel is made, never by `import signoff`. The secret is `whsec_` +
base64 of the key, as `standardwebhooks.Webhook` takes it. The body
is the outbox payload: `{"type": "approval.requested", "timestamp": ..., "data": {...}}`.
A 2xx answer delivers; anything else, a timeout or a refused connection is a failed
attempt, retried with backoff (410 Gone: the receiver is gone for good, no retry).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from signoff import errors
from signoff.channels.base import Channel, DeliveryError, Message

if TYPE_CHECKING:
    from standardwebhooks import Webhook

PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The key in a `whsec_...` secret; a clear error for anything else."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise errors.InvalidArgument(
            "a webhook secret is 'whsec_' followed by base64 of at least 24 random bytes, "
            "e.g. 'whsec_' + base64.b64encode(os.urandom(32)).decode()"
        )
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except binascii.Error:
        raise errors.InvalidArgument("the webhook secret after 'whsec_' is not base64") from None
    if len(key) < 24:
        raise errors.InvalidArgument("the webhook secret's key must be at least 24 bytes")
    return key


def signer(secret: str, name: str = "webhook") -> Webhook:
    """A `standardwebhooks.Webhook` for `secret` (checked first, for a clear error); a
    clear error when the package is missing."""
    signing_key(secret)
    try:
        from standardwebhooks import Webhook
    except ImportError:
        raise errors.InvalidArgument(
            f"webhook {name!r}: signing needs the standardwebhooks package: "
            "pip install 'signoff[webhooks]'"
        ) from None
    return Webhook(secret)


def sign(webhook: Webhook, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header for one attempt."""
    at = datetime.fromtimestamp(timestamp, UTC)
    return webhook.sign(msg_id, at, body.decode())


class WebhookChannel(Channel):
    """POST every routed event to `url`, signed with `secret` (`whsec_...`)."""

    def __init__(
        self,
        name: str,
        *,
        url: str,
        secret: str,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        concurrency: int = 4,
    ) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise errors.InvalidArgument(f"webhook {name!r}: url must be http(s)://host/...")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise errors.InvalidArgument(f"webhook {name!r}: concurrency must be at least 1")
        self.name = name
        self.url = url
        self._host = parts.netloc.rpartition("@")[2]  # never user:password in messages
        self._secret = secret
        self._webhook = signer(secret, name)
        self.timeout = timeout
        self.concurrency = concurrency
        self._headers = dict(headers or {})
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"WebhookChannel({self.name!r}, url=<{self._host}>)"

    async def open(self) -> None:
        if self._client is None:
            # A small pool: httpcore walks the whole pool for every request.
            size = max(self.concurrency, 1)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            self._client = httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, limits=limits
            )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def secrets(self) -> Sequence[str]:
        return (self._secret, self.url)

    async def send(self, message: Message) -> None:
        await self.open()
        assert self._client is not None
        body = json.dumps(message.delivery.payload, separators=(",", ":")).encode()
        timestamp = int(time.time())  # the receiver judges it by its own clock
        headers = {
            **self._headers,
            "content-type": "application/json",
            "webhook-id": message.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._webhook, message.id, timestamp, body),
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise DeliveryError(f"{self._host} did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"cannot reach {self._host}: {type(exc).__name__}") from None
        if 200 <= response.status_code < 300:
            return
        raise DeliveryError(
            f"{self._host} answered HTTP {response.status_code}",
            permanent=response.status_code == 410,
        )
