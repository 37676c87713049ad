"""Routing as data: which events of which workflows and approvals go to which channel,
and to whom; and per-person addresses through the engine's directory.

```python
Engine(url, notifications=[
    Route(webhook),                                               # every event
    Route(mail, events=["approval.requested", "approval.reminder", "approval.escalated"]),
    Route(mail, events=["run.failed"], workflows=["refund*"], to=["requester", "role:ops"]),
])
```
`events`, `workflows` and `keys` take shell-style patterns (`approval.*`, `refund*`);
`keys` narrows approval events only (run events have no key). `to` names people,
`role:NAME` (expanded through the directory when delivered), `approvers` (who may decide
that approval; for an escalation, those it added; for a reminder, those not yet voted)
and `requester` (who started the run). Several routes to one channel merge: an event
goes to a channel once, to everyone they name.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from signoff import errors, outbox, policy
from signoff.channels.base import Channel


@dataclass(frozen=True, slots=True)
class Route:
    """Send `events` of `workflows` (and approval `keys`) through `channel` to `to`."""

    channel: Channel
    events: Sequence[str] = ("*",)
    workflows: Sequence[str] = ("*",)
    keys: Sequence[str] = ("*",)
    to: Sequence[str] = (outbox.APPROVERS,)
    max_attempts: int = 8

    def matches(self, event: str, workflow: str, key: str | None) -> bool:
        return (
            _any(event, self.events)
            and _any(workflow, self.workflows)
            and (key is None or _any(key, self.keys))
        )


def _any(value: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


class Routing:
    """The engine's routes, checked once, answering the store's `outbox.Plan` question."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        self.channels: dict[str, Channel] = {}
        for route in self.routes:
            _check(route)
            known = self.channels.setdefault(route.channel.name, route.channel)
            if known is not route.channel:
                raise errors.InvalidArgument(
                    f"two different channels are named {route.channel.name!r}; "
                    "give each channel its own name (the outbox records it)"
                )
        self._cache: dict[tuple[str, str, str | None], tuple[outbox.Target, ...]] = {}
        self.events = frozenset(e for e in outbox.EVENTS for r in self.routes if _any(e, r.events))

    def targets(self, event: str, workflow: str, key: str | None) -> tuple[outbox.Target, ...]:
        found = self._cache.get((event, workflow, key))
        if found is None:
            found = self._targets(event, workflow, key)
            if len(self._cache) < 10_000:
                self._cache[(event, workflow, key)] = found
        return found

    def _targets(self, event: str, workflow: str, key: str | None) -> tuple[outbox.Target, ...]:
        merged: dict[str, tuple[list[str], int]] = {}
        for route in self.routes:
            if route.matches(event, workflow, key):
                to, attempts = merged.setdefault(route.channel.name, ([], route.max_attempts))
                to.extend(n for n in route.to if n not in to)
                merged[route.channel.name] = (to, max(attempts, route.max_attempts))
        return tuple(
            outbox.Target(name, tuple(to), n, self.channels[name].digest)
            for name, (to, n) in merged.items()
        )


def _check(route: Route) -> None:
    if not isinstance(route, Route) or not isinstance(route.channel, Channel):
        raise errors.InvalidArgument(
            f"notifications takes Route(channel, ...) entries, not {route!r:.80}"
        )
    name = getattr(route.channel, "name", None)
    if not isinstance(name, str) or not name:
        raise errors.InvalidArgument(f"channel {route.channel!r:.60} has no name")
    for what in ("events", "workflows", "keys", "to"):
        value = getattr(route, what)
        if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
            raise errors.InvalidArgument(
                f"Route.{what} must be a list of non-empty strings, not {value!r:.60}"
            )
    for pattern in route.events:
        if not any(fnmatch.fnmatchcase(e, pattern) for e in outbox.EVENTS):
            raise errors.InvalidArgument(
                f"Route.events: {pattern!r} matches no event; events are {', '.join(outbox.EVENTS)}"
            )
    if not isinstance(route.max_attempts, int) or route.max_attempts < 1:
        raise errors.InvalidArgument("Route.max_attempts must be a whole number of at least 1")


class Contacts(policy.Directory):
    """A `Directory` that also knows how to reach people: roles as before, and per
    person an address per channel kind.

    `Contacts({"finance": ["bob"]}, addresses={"bob": {"email": "bob@example.com"}})`.
    Any directory with `address(person, kind) -> str | None` works the same way.
    """

    def __init__(
        self,
        roles: Mapping[str, Iterable[str]] | None = None,
        *,
        addresses: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        super().__init__(roles)
        self._addresses = {p: dict(kinds) for p, kinds in (addresses or {}).items()}

    def address(self, person: str, kind: str) -> str | None:
        return self._addresses.get(person, {}).get(kind)

    def person(self, kind: str, address: str) -> str | None:
        """Who has this address (a Slack user id, say): the reverse of `address`."""
        found = [p for p, kinds in self._addresses.items() if kinds.get(kind) == address]
        return found[0] if len(found) == 1 else None


def resolve(
    recipients: Sequence[str], directory: policy.DirectoryLike, kind: str
) -> tuple[dict[str, str], tuple[str, ...]]:
    """({person: address}, names with no address): roles expanded through `directory`,
    addresses from its `address(person, kind)`; an email recipient written as an
    address is its own."""
    people: list[str] = []
    unknown: list[str] = []
    for name in recipients:
        if name.startswith(policy.ROLE):
            try:
                members = sorted(directory.members(name[len(policy.ROLE) :]))
            except KeyError:
                unknown.append(name)
                continue
            people.extend(p for p in members if p not in people)
        elif name not in people:
            people.append(name)
    lookup = getattr(directory, "address", None)
    found: dict[str, str] = {}
    for person in people:
        address = lookup(person, kind) if callable(lookup) else None
        if address is None and kind == "email" and "@" in person:
            address = person
        if isinstance(address, str) and address:
            found[person] = address
        else:
            unknown.append(person)
    return found, tuple(unknown)
