"""Reaching people: channels that deliver the outbox's notifications, and routes that
say which events go where. See docs/notifications.md."""

from __future__ import annotations

from signoff.channels.base import Channel, DeliveryError, Message
from signoff.channels.email import EmailChannel
from signoff.channels.routing import Contacts, Route
from signoff.channels.webhook import WebhookChannel

__all__ = [
    "Channel",
    "Contacts",
    "DeliveryError",
    "EmailChannel",
    "Message",
    "Route",
    "WebhookChannel",
]
