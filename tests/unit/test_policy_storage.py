"""An approval's policy as stored (migration 0013): the plain policy as its mark "~1",
others as "~1" and what differs, or as their text; always read back byte for byte."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest

from signoff import policy, serialization
from signoff.store.sql import POLICY_V1_MARK, policy_or_none, policy_text, stored_policy


def built(**given: Any) -> str:
    rules: dict[str, Any] = dict(
        approvers=None,
        quorum=1,
        reject_quorum=1,
        allow_self_approval=False,
        on_timeout="expire",
        escalate_after=None,
        escalate_to=None,
        remind_every=None,
        schema=None,
        stage=None,
        directory=None,
    )
    rules.update(given)
    return serialization.dumps(policy.build(**rules), where="a test policy")


PLAIN = built()


def test_the_plain_policy_is_stored_as_its_mark() -> None:
    assert stored_policy(PLAIN) == POLICY_V1_MARK == "~1"
    assert policy_text("~1") == PLAIN
    assert len(PLAIN) == 236


@pytest.mark.parametrize(
    "text",
    [
        built(approvers=["alice", "bob"], quorum=2),
        built(approvers=["alice"], escalate_after=3600.0, escalate_to=["dave"]),
        built(on_timeout="approve", remind_every=60.0, allow_self_approval=True),
        built(edits=False),
        built(question=True, metadata={"ticket": "T-1", "ünïcode": "✓"}),
        built(stage={"name": "legal", "stages": ["legal", "cfo"]}),
        built(schema={"type": "object", "properties": {"amount": {"type": "integer"}}}),
        built(quorum=1, reject_quorum=2),
    ],
)
def test_every_policy_reads_back_as_its_text(text: str) -> None:
    stored = stored_policy(text)
    assert stored.startswith("~1{") and len(stored) < len(text)
    assert policy_text(stored) == text


@pytest.mark.parametrize(
    "text",
    [
        PLAIN.replace('"escalated":false', '"escalated":0'),  # equal in Python, not as text
        PLAIN.replace('"quorum":1', '"quorum":1.0'),
        PLAIN.replace('{"approvers":[],', "{").replace("}", ',"approvers":[]}'),  # key order
        PLAIN.replace(',"stage":null', ""),  # a key fewer (an older policy)
        PLAIN.replace(":", ": "),  # other spacing
        '{"approvers": ["alice"]}',
        "[1, 2]",
        "not json",
    ],
)
def test_a_text_that_would_not_read_back_the_same_is_stored_as_it_is(text: str) -> None:
    assert stored_policy(text) == text
    assert policy_text(text) == text


def test_none_is_no_policy_and_an_unknown_mark_is_refused() -> None:
    assert policy_or_none(None) is None
    with pytest.raises(ValueError, match="unknown"):
        policy_text("~2")


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_the_migration_stores_exactly_the_plain_text_as_the_mark(dialect: str) -> None:
    folder = resources.files("signoff.store") / "migrations" / dialect
    text = (folder / "0013_compact_waiting.sql").read_text(encoding="utf-8")
    assert f"policy = '{PLAIN}' THEN '~1'" in text or f"'~1' WHERE policy = '{PLAIN}'" in text
