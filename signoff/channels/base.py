"""What a channel is: something that delivers one notification, or says why it could not.

A channel gets a `Message` (the delivery, with its recipients' addresses resolved) and
returns when the message is out; it raises `DeliveryError` with a text safe to show
(no secrets: it is kept in the database and printed by `signoff deliveries list`) when
it is not. Any other exception counts as a failed attempt too, its text redacted of
the channel's `secrets()`. The deliverer retries with backoff; a channel never needs to.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from signoff import outbox

if TYPE_CHECKING:
    from signoff.store.base import Store


class DeliveryError(Exception):
    """This attempt failed; `permanent`: no later attempt can succeed (no address, a
    receiver that refuses the message for good), so the message is dead at once."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery as a channel receives it."""

    delivery: outbox.Delivery
    # person -> address of the kind the channel asked for (`Channel.address_kind`)
    addresses: dict[str, str] = field(default_factory=dict)
    # recipients the directory knew no address for
    unknown: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.delivery.id

    @property
    def event(self) -> str:
        return self.delivery.event


class Channel(abc.ABC):
    """A way to reach people or systems. `name` is what routes and the outbox call it."""

    name: str
    # The kind of address the channel needs for each recipient ("email", "slack"), looked
    # up through the engine's directory; None: it needs none (webhooks, callbacks).
    address_kind: str | None = None
    # How long one attempt may take before it counts as failed (the deliverer's limit).
    timeout: float = 30.0
    # Attempts a worker makes at once (the most any of its channels asks for). Few: the
    # attempts share the worker's event loop with its runs.
    concurrency: int = 4
    # Seconds over which the outbox gathers this channel's messages: each is held until
    # its window ends, then all that are due go to `send_digest` together. None: at once.
    digest: float | None = None

    def attach(self, store: Store) -> None:
        """Called before `open` with the store the outbox is in: for a channel that keeps
        where it posted a message, to update it in place later (the Slack channel)."""
        return None

    async def open(self) -> None:
        """Get ready to deliver (connections, clients). Called when a worker starts."""
        return None

    async def close(self) -> None:
        return None

    @abc.abstractmethod
    async def send(self, message: Message) -> None:
        """Deliver `message`, or raise (`DeliveryError` with a text safe to show)."""

    async def send_digest(self, messages: Sequence[Message]) -> None:
        """Deliver the messages gathered over a digest window together (all or none: an
        error fails the attempt of each). The default sends them one by one."""
        for message in messages:
            await self.send(message)

    def secrets(self) -> Sequence[str]:
        """Texts never to show in an error (passwords, signing keys)."""
        return ()
