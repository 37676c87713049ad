"""The inbox's live stream, fanned out by person.

An approval event (`waiting_for_input`, `input_resolved`) goes to the people who may see
that approval (`rules.may_see`), reduced to its run, key, status and who decided; every
other event goes, reduced to its run and type, only to readers of everything (the `read`
scope). Open streams are indexed by the person they are for, and for each event the
approval is read once and its audience worked out once, from who it names (people and
the members of its roles), who took part and whose inbox holds it; so an event costs the
streams of the people who may see it, not every open inbox stream.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from signoff import models, policy
from signoff.engine import Engine
from signoff.server import stream
from signoff.server.inbox import rules, session

APPROVAL_EVENTS = frozenset({"waiting_for_input", "input_resolved"})


class InboxFanout:
    """The inbox streams of one app (a `stream.Fanout`): each subscriber's `viewer` is
    the `session.Viewer` it is for."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._readers: set[stream.Subscriber] = set()  # the `read` scope: everything
        self._people: dict[str, set[stream.Subscriber]] = {}  # the others, by name
        self._count = 0

    @staticmethod
    def _who(sub: stream.Subscriber) -> session.Viewer:
        who = sub.viewer
        assert isinstance(who, session.Viewer)
        return who

    def add(self, sub: stream.Subscriber) -> None:
        who = self._who(sub)
        self._count += 1
        if who.reads_all:
            self._readers.add(sub)
        elif who.name is not None:  # unnamed and unable to read: sees nothing
            self._people.setdefault(who.name, set()).add(sub)

    def remove(self, sub: stream.Subscriber) -> None:
        who = self._who(sub)
        self._count -= 1
        if who.reads_all:
            self._readers.discard(sub)
        elif who.name is not None and (subs := self._people.get(who.name)) is not None:
            subs.discard(sub)
            if not subs:
                del self._people[who.name]

    def listening(self) -> bool:
        return self._count > 0

    async def deliver(self, events: Sequence[models.HistoryEntry]) -> list[stream.Subscriber]:
        stalled: list[stream.Subscriber] = []
        for event in events:
            name = stream.EVENT_NAMES.get(event.type)
            if name is None:
                continue
            if name not in APPROVAL_EVENTS:
                if self._readers:
                    item = _reduced(event, name)
                    stalled += [s for s in self._readers if not s.put(item)]
                continue
            if not self._readers and not self._people:
                continue
            approval = await _approval_of(self.engine, event)
            if approval is None:
                continue
            item = _outcome(event, name, approval)
            stalled += [s for s in self._readers if not s.put(item)]
            for person in await audience(self.engine, approval, self._people):
                stalled += [s for s in self._people.get(person, ()) if not s.put(item)]
        return stalled

    async def catch_up(
        self, sub: stream.Subscriber, events: Sequence[models.HistoryEntry]
    ) -> list[stream.Item]:
        who = self._who(sub)
        items: list[stream.Item] = []
        for event in events:
            name = stream.EVENT_NAMES.get(event.type)
            if name is None:
                continue
            if name not in APPROVAL_EVENTS:
                if who.reads_all:
                    items.append(_reduced(event, name))
                continue
            approval = await _approval_of(self.engine, event)
            if approval is not None and await rules.may_see(self.engine, who, approval):
                items.append(_outcome(event, name, approval))
        return items


async def audience(
    engine: Engine, approval: models.Approval, listening: Collection[str]
) -> set[str]:
    """Those of `listening` (names of people without the `read` scope) who may see
    `approval`, as `rules.may_see` decides it for each, worked out once for all."""
    if not listening:
        return set()
    pending = approval.status is models.ApprovalStatus.PENDING
    if pending and not approval.approvers:  # anyone may
        return set(listening)
    names: set[str] = {v.by for v in approval.votes if v.by is not None}
    if approval.decided_by is not None:
        names.add(approval.decided_by)
    for named in approval.approvers:
        names.add(named)
        if named.startswith(policy.ROLE):
            try:
                names |= _among(engine.directory.members(named[len(policy.ROLE) :]), listening)
            except KeyError:
                continue
    if pending:  # and whose inbox holds it (escalations, open to anyone but a few)
        rows = await engine.access.inbox_principals(approval.run_id, approval.key)
        names.update(rows)  # as `rules.in_inbox` reads them: a row of their name
        if policy.ANYONE in rows:
            names.update(p for p in listening if policy.NOT + p not in rows)
    return _among(names, listening)


def _among(names: Iterable[str], listening: Collection[str]) -> set[str]:
    return {n for n in names if n in listening}


async def _approval_of(engine: Engine, event: models.HistoryEntry) -> models.Approval | None:
    data = event.data
    key = str(data.get("key", "")) if isinstance(data, dict) else ""
    return await rules.latest(engine, event.run_id, key)


def _outcome(event: models.HistoryEntry, name: str, approval: models.Approval) -> stream.Item:
    text = stream.frame(event.id, name, rules.outcome(approval))
    return stream.Item(event.id, event.run_id, text)


def _reduced(event: models.HistoryEntry, name: str) -> stream.Item:
    text = stream.frame(event.id, name, {"run_id": event.run_id, "type": name})
    return stream.Item(event.id, event.run_id, text)
