"""Reaching people: channels that deliver the outbox's notifications, and routes that
say which events go where. See docs/notifications.md."""

from __future__ import annotations

from signoff.channels.base import Channel, DeliveryError, Message
from signoff.channels.callbacks import (
    CallbackChannel,
    ConsoleChannel,
    on,
    on_approval_requested,
    on_decided,
    on_escalated,
    on_run_completed,
    on_run_failed,
)
from signoff.channels.email import EmailChannel
from signoff.channels.routing import Contacts, Route
from signoff.channels.slack import SlackChannel
from signoff.channels.webhook import WebhookChannel

__all__ = [
    "CallbackChannel",
    "Channel",
    "ConsoleChannel",
    "Contacts",
    "DeliveryError",
    "EmailChannel",
    "Message",
    "Route",
    "SlackChannel",
    "WebhookChannel",
    "on",
    "on_approval_requested",
    "on_decided",
    "on_escalated",
    "on_run_completed",
    "on_run_failed",
]
