"""Approval policy logic without a store: directory, building, votes, tally, digests,
schemas, cursors."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from signoff import Directory, InvalidArgument, errors, policy, schemas

DIRECTORY = Directory({"finance": ["bob", "carol"], "empty": []})


def build(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
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
        directory=DIRECTORY,
    )
    return policy.build(**{**args, **kw})


def test_roles_resolve_through_the_directory() -> None:
    built = build(approvers=["alice", "role:finance"])
    assert built["eligible"] == ["alice", "bob", "carol"]
    assert built["approvers"] == ["alice", "role:finance"]
    assert policy.inbox_principals(built, "bob") == ["alice", "carol", "role:finance"]
    assert policy.inbox_principals({**built, "allow_self_approval": True}, "bob")[1] == "bob"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"approvers": ["alice"], "quorum": 2}, "quorum 2 is larger than the 1 people"),
        ({"approvers": ["role:empty"]}, "resolve to nobody"),
        ({"approvers": ["role:ghosts"]}, "role 'ghosts' is unknown"),
        ({"approvers": "alice"}, "must be a list"),
        ({"quorum": 0}, "quorum must be a whole number"),
        ({"reject_quorum": True}, "reject_quorum must be"),
        ({"on_timeout": "maybe"}, "on_timeout must be one of"),
        ({"escalate_after": 60.0}, "go together"),
        ({"escalate_after": 60.0, "escalate_to": ["role:nope"]}, "role 'nope' is unknown"),
        ({"escalate_after": 60.0, "escalate_to": ["role:empty"]}, "resolves to nobody"),
        ({"schema": 42}, "pydantic model class or a JSON Schema"),
    ],
)
def test_policies_that_cannot_work_are_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build(**kw)


def test_no_directory_knows_no_roles() -> None:
    with pytest.raises(InvalidArgument, match="unknown"):
        policy.resolve(["role:finance"], None, "approvers")


def test_check_vote() -> None:
    built = build(approvers=["alice", "role:finance"], quorum=2)
    assert policy.check_vote(built, status="approved", by="bob", requested_by=None) is None
    assert policy.check_vote(built, status="approved", by="eve", requested_by=None) == (
        "not_allowed",
        ["alice", "bob", "carol"],
    )
    assert policy.check_vote(built, status="approved", by="bob", requested_by="bob") == (
        "self_approval",
        None,
    )
    assert policy.check_vote(built, status="edited", by="bob", requested_by=None, value=1) == (
        "edit_under_quorum",
        None,
    )
    assert policy.check_vote(None, status="approved", by=None, requested_by=None) is None


def test_tally() -> None:
    two = build(approvers=["alice", "bob", "carol"], quorum=2)
    assert policy.tally(two, [("alice", "approved")]) is None
    assert policy.tally(two, [("alice", "approved"), ("bob", "approved")]) == "approved"
    assert policy.tally(two, [("alice", "rejected")]) == "rejected"
    lenient = {**two, "reject_quorum": 2}
    assert policy.tally(lenient, [("alice", "rejected")]) is None
    # two rejections of three leave too few to reach the quorum either way
    assert policy.tally(
        {**two, "reject_quorum": 3}, [("alice", "rejected"), ("bob", "rejected")]
    ) == ("rejected")
    assert policy.tally(two, [("alice", "changes_requested")]) == "changes_requested"
    assert policy.tally(None, [("x", "edited")]) == "edited"


def test_digest_covers_summary_value_and_round() -> None:
    base = policy.digest("Pay 10", '{"amount":10}', 1)
    assert base == policy.digest("Pay 10", '{ "amount": 10 }', 1)  # same JSON, same digest
    assert len(base) == 64
    assert base != policy.digest("Pay 10", '{"amount":11}', 1)
    assert base != policy.digest("Pay 11", '{"amount":10}', 1)
    assert base != policy.digest("Pay 10", '{"amount":10}', 2)


class Item(pydantic.BaseModel):
    sku: str = pydantic.Field(pattern=r"^[A-Z]+-\d+$")
    qty: int = pydantic.Field(gt=0)


class Order(pydantic.BaseModel):
    items: list[Item] = pydantic.Field(min_length=1)
    note: str | None = None


def test_schemas_validate_pydantic_generated_json_schema() -> None:
    schema = schemas.to_json_schema(Order)
    assert schemas.validate({"items": [{"sku": "AB-1", "qty": 2}]}, schema) == []
    assert schemas.validate({"items": [{"sku": "x", "qty": 0}], "note": 5}, schema) == [
        "items[0].sku: 'x' does not match '^[A-Z]+-\\\\d+$'",
        "items[0].qty: 0 is not greater than 0",
        "note: 5 matches none of the allowed shapes",
    ]
    assert schemas.validate({"items": []}, schema) == ["items: has 0 items, fewer than 1"]
    assert schemas.validate([], schema) == ["[] is not of type object"]


def test_schemas_validate_hand_written_json_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"amount": {"type": "number", "maximum": 100}, "kind": {"enum": ["a"]}},
        "required": ["amount"],
        "additionalProperties": False,
    }
    assert schemas.validate({"amount": 5.5}, schema) == []
    assert schemas.validate({"amount": True, "kind": "b", "x": 1}, schema) == [
        "amount: True is not of type number",
        "kind: 'b' is not one of ['a']",
        "x: no such field (additional fields are not allowed)",
    ]


def test_cursors_round_trip_and_garbage_is_refused() -> None:
    cursor = policy.encode_cursor(1.5, "run-1", "pay/é")
    assert policy.decode_cursor(cursor) == (1.5, "run-1", "pay/é")
    for bad in ("", "!!!", policy.encode_cursor(1.0, "r", "k")[:-3], "WzFd"):
        with pytest.raises(errors.InvalidArgument, match="cursor"):
            policy.decode_cursor(bad)
