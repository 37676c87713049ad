"""The replay cursor, without a store: hits, misses, and mismatches."""

from __future__ import annotations

import pytest

from signoff import errors
from signoff.journal import (
    EntryKind,
    EntryStatus,
    JournalEntry,
    ReplayCursor,
    decode_error,
    mismatch,
)


def entry(
    seq: int,
    kind: EntryKind,
    name: str,
    status: EntryStatus = EntryStatus.DONE,
    result: str | None = "1",
) -> JournalEntry:
    return JournalEntry(seq=seq, kind=kind, name=name, status=status, result=result)


JOURNAL = [
    entry(0, EntryKind.STEP, "load"),
    entry(1, EntryKind.NOW, "now", result="1800000000.0"),
    entry(2, EntryKind.APPROVAL, "manager", EntryStatus.OPEN, None),
]


def test_hits_return_the_recorded_entries_in_order() -> None:
    cursor = ReplayCursor("run-1", JOURNAL)
    assert cursor.position == 0
    assert cursor.advance(EntryKind.STEP, "load") == (0, JOURNAL[0])
    assert cursor.advance(EntryKind.NOW, "now") == (1, JOURNAL[1])
    seq, found = cursor.advance(EntryKind.APPROVAL, "manager")
    assert (seq, found) == (2, JOURNAL[2])
    assert found is not None and found.status is EntryStatus.OPEN
    assert cursor.position == 3
    assert cursor.unreplayed() is None


def test_a_miss_past_the_journal_returns_no_entry() -> None:
    cursor = ReplayCursor("run-1", JOURNAL[:1])
    cursor.advance(EntryKind.STEP, "load")
    assert cursor.advance(EntryKind.STEP, "issue") == (1, None)
    assert cursor.advance(EntryKind.SLEEP, "sleep") == (2, None)


def test_empty_journal_is_all_misses() -> None:
    cursor = ReplayCursor("run-1", [])
    assert [cursor.advance(EntryKind.STEP, f"s{i}") for i in range(3)] == [
        (0, None),
        (1, None),
        (2, None),
    ]


def test_journal_order_is_by_seq_not_list_order() -> None:
    cursor = ReplayCursor("run-1", list(reversed(JOURNAL)))
    assert cursor.advance(EntryKind.STEP, "load")[1] == JOURNAL[0]


def test_remember_makes_new_entries_visible() -> None:
    cursor = ReplayCursor("run-1", [])
    seq, found = cursor.advance(EntryKind.STEP, "a")
    assert found is None
    written = entry(seq, EntryKind.STEP, "a")
    cursor.remember(written)
    assert cursor.unreplayed() is None  # already passed


@pytest.mark.parametrize(
    ("kind", "name", "found_text"),
    [
        (EntryKind.STEP, "fetch", "step 'fetch'"),  # other name
        (EntryKind.APPROVAL, "load", "approval 'load'"),  # other kind, same name
        (EntryKind.SLEEP, "sleep", "sleep 'sleep'"),
    ],
)
def test_mismatch_names_run_position_expected_and_found(
    kind: EntryKind, name: str, found_text: str
) -> None:
    cursor = ReplayCursor("run-42", JOURNAL)
    with pytest.raises(errors.NonDeterminismError) as info:
        cursor.advance(kind, name)
    err = info.value
    assert (err.run_id, err.seq, err.expected, err.found) == (
        "run-42",
        0,
        "step 'load'",
        found_text,
    )
    message = str(err)
    assert "run run-42" in message and "position 0" in message
    assert "recorded step 'load'" in message and f"now calls {found_text}" in message


def test_mismatch_later_in_the_journal() -> None:
    cursor = ReplayCursor("r", JOURNAL)
    cursor.advance(EntryKind.STEP, "load")
    cursor.advance(EntryKind.NOW, "now")
    with pytest.raises(errors.NonDeterminismError) as info:
        cursor.advance(EntryKind.APPROVAL, "finance")
    assert info.value.seq == 2
    assert info.value.expected == "approval 'manager'"
    assert info.value.found == "approval 'finance'"


def test_unreplayed_reports_the_first_entry_not_reached() -> None:
    cursor = ReplayCursor("r", JOURNAL)
    assert cursor.unreplayed() == JOURNAL[0]
    cursor.advance(EntryKind.STEP, "load")
    assert cursor.unreplayed() == JOURNAL[1]


def test_mismatch_helper_and_decode_error() -> None:
    err = mismatch("r", 3, "step 'a'", "the end of the workflow")
    assert isinstance(err, errors.NonDeterminismError)
    assert "position 3" in str(err) and "the end of the workflow" in str(err)
    assert decode_error('{"type": "X", "message": "m"}') == {"type": "X", "message": "m"}
    assert decode_error(None) == {}
    assert decode_error("[1]") == {}


def test_paths_match_calls_to_records_whatever_order_they_were_recorded_in() -> None:
    """Two tasks' calls were recorded interleaved one way; the replay makes them the other
    way round: each still gets its own record, and new calls take fresh seqs."""
    recorded = [
        JournalEntry(seq=0, kind=EntryKind.APPROVAL, name="a", status=EntryStatus.DONE, path="0/0"),
        JournalEntry(seq=1, kind=EntryKind.APPROVAL, name="b", status=EntryStatus.DONE, path="1/0"),
        JournalEntry(seq=2, kind=EntryKind.STEP, name="send", status=EntryStatus.DONE,
                     result='"b"', path="1/1"),
        JournalEntry(seq=3, kind=EntryKind.STEP, name="send", status=EntryStatus.DONE,
                     result='"a"', path="0/1"),
    ]  # fmt: skip
    cursor = ReplayCursor("run-1", recorded)
    assert cursor.advance(EntryKind.APPROVAL, "a", "0/0")[0] == 0
    assert cursor.advance(EntryKind.STEP, "send", "0/1") == (3, recorded[3])
    assert cursor.advance(EntryKind.APPROVAL, "b", "1/0")[0] == 1
    assert cursor.advance(EntryKind.STEP, "send", "1/1") == (2, recorded[2])
    assert cursor.unreplayed() is None
    assert cursor.advance(EntryKind.STEP, "next", "2") == (4, None)  # after the highest seq


def test_rows_without_a_path_are_where_their_seq_says() -> None:
    """Journals written before paths existed replay unchanged."""
    cursor = ReplayCursor("run-1", JOURNAL)
    assert cursor.advance(EntryKind.STEP, "load", "0") == (0, JOURNAL[0])
    assert cursor.advance(EntryKind.NOW, "now") == (1, JOURNAL[1])


def test_a_skipped_task_counts_as_replayed() -> None:
    recorded = [
        JournalEntry(seq=0, kind=EntryKind.CHOICE, name="any_of", status=EntryStatus.DONE,
                     result="1", path="0"),
        JournalEntry(seq=1, kind=EntryKind.APPROVAL, name="a", status=EntryStatus.DONE,
                     path="0/0"),
        JournalEntry(seq=2, kind=EntryKind.APPROVAL, name="b", status=EntryStatus.DONE,
                     path="1/0"),
    ]  # fmt: skip
    cursor = ReplayCursor("run-1", recorded)
    cursor.advance(EntryKind.CHOICE, "any_of", "0")
    cursor.advance(EntryKind.APPROVAL, "b", "1/0")
    assert cursor.unreplayed() == recorded[1]
    cursor.skip("0/")
    assert cursor.unreplayed() is None
