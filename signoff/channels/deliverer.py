"""The deliverer: a worker's loop that claims due notifications and hands each to its
channel, then records the attempt's outcome.

It runs beside the worker's run loop, never inside it: a channel that hangs, fails or
is slow delays only its own messages (each attempt has a timeout, and at most
`concurrency` are in flight), never a run. Claims are leased like runs, so many workers
deliver each message once; a worker killed mid-delivery leaves the message to be taken
again after its lease, under the same id (at least once, deduplicated by receivers).

A channel with a `digest` interval gets its due messages (held until their window
ended) as one batch, up to `DIGEST_BATCH`, in one attempt (`send_digest`); each message
of the batch records that attempt's outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from signoff import clock, outbox, policy
from signoff.channels import routing
from signoff.channels.base import Channel, DeliveryError, Message
from signoff.store.base import Store
from signoff.telemetry import Telemetry

log = logging.getLogger(__name__)

DIGEST_BATCH = 100  # messages of one digest channel claimed (and sent) together
_DIGEST_SLOWER = 10  # a digest attempt may take this many times a single one


class Deliverer:
    """Delivers the outbox's messages for the channels of one engine."""

    def __init__(
        self,
        *,
        store: Store,
        clock_: clock.Clock,
        channels: dict[str, Channel],
        directory: policy.DirectoryLike,
        owner: str,
        poll_interval: float = 0.25,
        concurrency: int | None = None,
        backoff: tuple[float, float] = (5.0, 3600.0),
        telemetry: Telemetry | None = None,
    ) -> None:
        self.owner = owner
        self._telemetry = telemetry
        self._store = store
        self._clock = clock_
        self._channels = channels
        self._directory = directory
        self._poll = poll_interval
        wanted = max((c.concurrency for c in channels.values()), default=4)
        self._concurrency = max(1, concurrency if concurrency is not None else wanted)
        # A claim outlives the slowest attempt (each channel's timeout, plus a margin to
        # record the outcome), so no other worker takes a message still being sent.
        self._digests = sorted(n for n, c in channels.items() if c.digest is not None)
        self._plain = sorted(n for n in channels if n not in self._digests)
        self._lease = 2 * max((channels[n].timeout for n in self._plain), default=30.0) + 2.0
        self._digest_lease = 2 * max((_limit(channels[n]) for n in self._digests), default=0) + 2
        self._backoff = backoff
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._opened = False

    async def open(self) -> None:
        # The engine owns the channels (several deliverers may share them) and closes them.
        if not self._opened:
            for channel in self._channels.values():
                channel.attach(self._store)
                await channel.open()
            self._opened = True

    async def start(self) -> None:
        await self.open()
        await self._warn_of_orphans()
        self._task = asyncio.create_task(self._loop(), name="signoff-deliverer")

    async def _warn_of_orphans(self) -> None:
        """Messages for a channel no route names any more wait for a worker that has it:
        say so at start-up rather than let them wait unseen."""
        unknown = [c for c in await self._store.waiting_channels() if c not in self._channels]
        if unknown:
            log.warning(
                "undelivered notifications are waiting for channels this engine does not "
                "have: %s; a worker with those channels delivers them (see "
                "signoff deliveries list --channel NAME)",
                ", ".join(unknown),
                extra={"action": "outbox_orphans", "channels": unknown},
            )

    def wake(self) -> None:
        self._wake.set()

    def _freed(self, _: asyncio.Task[None]) -> None:
        self._wake.set()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight:  # let attempts under way record their outcome
            _, pending = await asyncio.wait(set(self._inflight), timeout=drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def run_once(self) -> int:
        """Deliver everything due now, `concurrency` at a time, waiting for every
        outcome; how many attempts were made. (A failure is due again only later.)"""
        await self.open()
        total = 0
        while True:
            claimed = await self._claim(self._concurrency)
            await asyncio.gather(*(self._deliver(b) for b in claimed))
            total += sum(len(b) for b in claimed)
            full = any(len(b) >= DIGEST_BATCH for b in claimed)
            if len(claimed) < self._concurrency and not full:
                return total

    async def _loop(self) -> None:
        failures = 0
        while True:
            try:
                free = self._concurrency - len(self._inflight)
                claimed = await self._claim(free) if free > 0 else []
                failures = 0
            except Exception:
                failures += 1
                log.exception("claiming notifications failed", extra={"action": "outbox_poll"})
                await asyncio.sleep(min(5.0, self._poll * 2**failures))
                continue
            for batch in claimed:
                task = asyncio.create_task(self._deliver(batch))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                task.add_done_callback(self._freed)  # a free slot claims the next at once
            if len(claimed) < max(free, 1):
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _claim(self, limit: int) -> list[list[outbox.Delivery]]:
        """Up to `limit` batches: one message each, or one digest channel's due ones."""
        now = self._clock.time()
        batches: list[list[outbox.Delivery]] = []
        for name in self._digests:
            if len(batches) >= limit:
                return batches
            found = await self._store.claim_deliveries(
                owner=self.owner,
                channels=[name],
                limit=DIGEST_BATCH,
                now=now,
                lease_until=now + self._digest_lease,
            )
            if found:
                batches.append(found)
        if self._plain and len(batches) < limit:
            found = await self._store.claim_deliveries(
                owner=self.owner,
                channels=self._plain,
                limit=limit - len(batches),
                now=now,
                lease_until=now + self._lease,
            )
            batches.extend([d] for d in found)
        return batches

    async def _deliver(self, batch: list[outbox.Delivery]) -> None:
        channel = self._channels[batch[0].channel]
        started = time.monotonic()
        outcomes = await self._attempt(channel, batch)
        took_ms = round((time.monotonic() - started) * 1000, 3)
        await asyncio.gather(
            *(self._finish(d, error, permanent, took_ms) for d, (error, permanent) in outcomes)
        )

    async def _finish(
        self, delivery: outbox.Delivery, error: str | None, permanent: bool, took_ms: float
    ) -> None:
        retry_in = None if permanent else outbox.backoff(delivery.attempts, *self._backoff)
        extra = {"action": "notification", "run_id": delivery.run_id, "message_id": delivery.id}
        for pause in (0.1, 0.5, 2.0, 5.0, None):  # the store may be down for a moment
            try:
                outcome = await self._store.finish_delivery(
                    id=delivery.id,
                    attempt=delivery.attempts,
                    owner=self.owner,
                    error=error,
                    took_ms=took_ms,
                    retry_in=retry_in,
                    now=self._clock.time(),
                )
                break
            except Exception:
                if pause is None:
                    log.exception("cannot record a delivery's outcome", extra=extra)
                    return
                await asyncio.sleep(pause)
        if error is None:
            if self._telemetry is not None:
                self._telemetry.delivered(delivery, self._clock.time())
            log.info("notification %s delivered", delivery.id, extra=extra)
        else:
            log.warning(
                "notification %s through %s failed (%s): %s",
                delivery.id,
                delivery.channel,
                outcome,
                error,
                extra=extra,
            )

    async def _attempt(
        self, channel: Channel, batch: list[outbox.Delivery]
    ) -> list[tuple[outbox.Delivery, Outcome]]:
        """Each delivery with its outcome: one attempt for the batch (a digest), except
        for a message that cannot be sent at all (no address), which fails alone."""
        outcomes: list[tuple[outbox.Delivery, Outcome]] = []
        messages: list[Message] = []
        for delivery in batch:
            try:
                messages.append(self._message(channel, delivery))
            except DeliveryError as exc:
                outcomes.append((delivery, (_redact(str(exc), channel.secrets()), exc.permanent)))
            except Exception as exc:
                error = _redact(f"{type(exc).__name__}: {exc}", channel.secrets())
                outcomes.append((delivery, (error, False)))
        if messages:
            digest = channel.digest is not None
            outcome = await self._send(channel, messages, digest)
            outcomes.extend((m.delivery, outcome) for m in messages)
        return outcomes

    async def _send(self, channel: Channel, messages: list[Message], digest: bool) -> Outcome:
        """(error text or None, whether no later attempt can succeed)."""
        limit = _limit(channel) if digest else channel.timeout + 1.0
        try:
            sending = channel.send_digest(messages) if digest else channel.send(messages[0])
            await asyncio.wait_for(sending, limit)
            return None, False
        except DeliveryError as exc:
            return _redact(str(exc), channel.secrets()), exc.permanent
        except TimeoutError:
            return f"no answer within {limit:g}s", False
        except Exception as exc:
            return _redact(f"{type(exc).__name__}: {exc}", channel.secrets()), False

    def _message(self, channel: Channel, delivery: outbox.Delivery) -> Message:
        if channel.address_kind is None:
            return Message(delivery)
        found, unknown = routing.resolve(delivery.recipients, self._directory, channel.address_kind)
        if not found:
            who = ", ".join(delivery.recipients) or "nobody (the route names no one)"
            raise DeliveryError(
                f"no {channel.address_kind} address for {who}: add them to the directory "
                "(signoff.channels.Contacts addresses)",
                permanent=True,
            )
        return Message(delivery, found, unknown)


Outcome = tuple[str | None, bool]  # (error text or None, no later attempt can succeed)


def _limit(channel: Channel) -> float:
    """How long one attempt of `channel` may take: a digest sends many mails at once."""
    return channel.timeout * (_DIGEST_SLOWER if channel.digest is not None else 1) + 1.0


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:1000]
