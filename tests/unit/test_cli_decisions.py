"""The CLI tells the whole approval model: who decides (always someone), what they may
decide (their inbox, with digest, votes and stage), on which version (`--digest`), which
run (any unique id prefix), in which database (never a new one by accident)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff import Engine
from signoff.cli import core
from tests.unit import cli_support
from tests.unit.cli_support import App, fails, ok, run_cli, start_waiting


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.delenv("SIGNOFF_ACTOR", raising=False)
    yield from cli_support.make_app(tmp_path, monkeypatch)


@pytest.fixture
def worker(app: App) -> Iterator[Engine]:
    yield from cli_support.run_worker(app)


def start_payment(app: App, worker: Engine, cents: int = 12900) -> str:
    run = json.loads(ok(app, "start", "payment", "--input", f"[{cents}]", "--json").stdout)
    assert worker.sync.settle(run["id"], timeout=10).status == "waiting"
    return str(run["id"])


def inbox(app: App, *args: str) -> list[dict[str, object]]:
    page = json.loads(ok(app, "approvals", "list", *args, "--json").stdout)
    assert set(page) == {"items", "next_cursor"}
    return list(page["items"])


# every decision has an actor ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["approve"],
        ["reject"],
        ["request-changes"],
        ["edit", "--value", '{"amount": 1}'],
    ],
)
def test_a_decision_without_an_actor_is_refused_and_records_nothing(
    app: App, worker: Engine, args: list[str]
) -> None:
    run_id = start_waiting(app, worker)
    command, *rest = args
    message = fails(run_cli("--db", app.db, command, run_id, "manager", *rest), "needs --by WHO")
    assert "SIGNOFF_ACTOR" in message and "nothing was recorded" in message
    approval = worker.sync.approvals(run_id)[0]
    assert approval.status == "pending" and approval.decided_by is None
    assert [e.type for e in worker.sync.history(run_id)].count("approval_decided") == 0


# the inbox -------------------------------------------------------------------------------


def test_approvals_list_for_an_approver_shows_digest_votes_and_stage(
    app: App, worker: Engine
) -> None:
    paying = start_payment(app, worker)
    refund = start_waiting(app, worker)
    assert {a["run_id"] for a in inbox(app)} == {paying, refund}
    mine = inbox(app, "--approver", "alice")  # hers, and the refund anyone may decide
    assert [(a["run_id"], a["quorum"], a["votes"]) for a in mine] == [
        (paying, 2, []),
        (refund, 1, []),
    ]
    assert mine[0]["approvers"] == ["alice", "bob", "role:finance"]
    assert len(str(mine[0]["digest"])) == 64 and "stage" in mine[0]
    assert [a["run_id"] for a in inbox(app, "--role", "finance")] == [paying]
    # through her role; an approval open to anyone is in every personal inbox
    assert [a["run_id"] for a in inbox(app, "--approver", "carol")] == [paying, refund]
    assert [a["run_id"] for a in inbox(app, "--approver", "zed")] == [refund]
    table = ok(app, "approvals", "list", "--approver", "alice").stdout
    assert str(mine[0]["digest"])[:12] in table and "0/2" in table
    assert "alice, bob, role:finance" in table

    out = ok(app, "approve", paying, "finance", "--by", "alice").stdout
    assert out.startswith("pending: approval 'finance' (round 1)") and "1 vote(s)" in out
    assert "1/2" in ok(app, "approvals", "list", "--approver", "bob").stdout
    fails(
        run_cli("--db", app.db, "approve", paying, "finance", "--by", "zed"),
        "zed",
    )
    ok(app, "approve", paying, "finance", "--by", "bob")
    assert worker.sync.result(paying, timeout=10)["status"] == "approved"


def test_approvals_list_shows_the_stage_of_a_chain(app: App, worker: Engine) -> None:
    plain = start_waiting(app, worker)
    assert "stage" not in ok(app, "approvals", "list").stdout  # no chain: no empty column
    run = json.loads(ok(app, "start", "chained", "--input", "[500]", "--json").stdout)
    assert worker.sync.settle(run["id"], timeout=10).status == "waiting"
    staged = inbox(app, "--key-prefix", "spend/")
    assert [(a["key"], a["stage"]) for a in staged] == [("spend/lead", "lead")]
    table = ok(app, "approvals", "list").stdout
    assert "stage" in table and "spend/lead" in table and plain[:12] in table
    ok(app, "approve", run["id"][:8], "spend/lead", "--by", "lee")
    assert worker.sync.settle(run["id"], timeout=10).status == "waiting"
    assert [a["stage"] for a in inbox(app, "--key-prefix", "spend/")] == ["cfo"]


def test_approvals_list_pages_with_a_cursor(app: App, worker: Engine) -> None:
    ids = [start_waiting(app, worker, f"ord-{n}") for n in range(3)]
    first = json.loads(ok(app, "approvals", "list", "--limit", "2", "--json").stdout)
    assert len(first["items"]) == 2 and first["next_cursor"]
    table = ok(app, "approvals", "list", "--limit", "2").stdout
    assert f"more: signoff approvals list --cursor {first['next_cursor']}" in table
    rest = inbox(app, "--limit", "2", "--cursor", str(first["next_cursor"]))
    assert sorted(a["run_id"] for a in [*first["items"], *rest]) == sorted(ids)


# --digest binds a decision to what was shown ---------------------------------------------


def test_a_stale_digest_is_refused_showing_the_current_one(app: App, worker: Engine) -> None:
    run_id = start_waiting(app, worker)
    digest = str(inbox(app)[0]["digest"])
    stale = "0" * 64
    message = fails(
        run_cli("--db", app.db, "approve", run_id, "manager", "--by", "al", "--digest", stale),
        "has changed since it was shown",
    )
    assert digest in message
    fails(
        run_cli("--db", app.db, "approve", run_id, "manager", "--by", "al", "--digest", "abc"),
        "--digest 'abc' is too short; give at least 8 characters",
    )
    assert worker.sync.approvals(run_id)[0].status == "pending"
    # the 12 characters the table shows are enough
    ok(app, "approve", run_id, "manager", "--by", "al", "--digest", digest[:12])
    assert worker.sync.result(run_id, timeout=10)["status"] == "approved"


# run ids: any unique prefix of 6+ characters --------------------------------------------


def test_every_run_argument_takes_a_unique_prefix(app: App, worker: Engine) -> None:
    run_id = start_waiting(app, worker)
    short = run_id[:8]  # what the demo prints
    assert json.loads(ok(app, "runs", "show", short, "--json").stdout)["run"]["id"] == run_id
    assert [a["run_id"] for a in inbox(app, "--run", run_id[:6])] == [run_id]
    out = ok(app, "approve", short, "manager", "--by", "alice").stdout
    assert out == f"approved: approval 'manager' (round 1) of run {run_id} by alice\n"
    assert worker.sync.result(run_id, timeout=10)["status"] == "approved"
    fails(run_cli("--db", app.db, "runs", "show", run_id[:5]), "needs 6 characters or more")

    waiter = json.loads(ok(app, "start", "waiter", "--json").stdout)["id"]
    assert ok(app, "signal", waiter[:7], "docs").stdout == f"sent signal 'docs' to run {waiter}\n"
    ok(app, "start", "waiter", "--run-id", "same-prefix-1")
    ok(app, "start", "waiter", "--run-id", "same-prefix-2")
    fails(
        run_cli("--db", app.db, "runs", "cancel", "same-prefix", "--by", "x"),
        "'same-prefix' is the start of several run ids (same-prefix-1, same-prefix-2)",
    )
    assert "cancelled run same-prefix-2" in ok(app, "runs", "cancel", "same-prefix-2").stdout


# the database: the app's, or an existing one, never a new one by accident ----------------


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list"],
        ["runs", "show", "abcdef"],
        ["runs", "cancel", "abcdef"],
        ["runs", "retry", "abcdef"],
        ["approvals", "list"],
        ["approve", "abcdef", "k", "--by", "a"],
        ["reject", "abcdef", "k", "--by", "a"],
        ["signal", "abcdef", "go"],
        ["start", "refund"],
        ["tokens", "list"],
        ["tokens", "revoke", "t1"],
    ],
)
def test_reading_or_deciding_never_creates_a_database(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "typo.db"
    message = fails(run_cli("--db", f"sqlite:///{db}", *args), f"no SQLite database at '{db}'")
    assert "--db URL" in message and "--app module:engine" in message
    assert not db.exists()


def test_app_gives_its_database_and_workflows(app: App, worker: Engine) -> None:
    run_id = start_waiting(app, worker)
    # The same app as another process would import it (not the worker's engine object).
    (app.path / f"{app.name}_cli.py").write_text(cli_support.APP_SOURCE)
    ref = f"{app.name}_cli:engine"
    # no --db: without --app the default ./signoff.db does not exist (and is not made)
    fails(run_cli("runs", "show", run_id), "no SQLite database at")
    assert json.loads(run_cli("--app", ref, "runs", "show", run_id, "--json").stdout)
    env = {"SIGNOFF_APP": ref}
    assert [
        a["run_id"]
        for a in json.loads(run_cli("approvals", "list", "--json", env=env).stdout)["items"]
    ] == [run_id]
    result = run_cli("approve", run_id, "manager", "--by", "alice", "--app", ref)
    assert result.exit_code == 0, result.output
    assert worker.sync.result(run_id, timeout=10)["status"] == "approved"
    assert not (app.path / "signoff.db").exists()


# starting ----------------------------------------------------------------------------------


def test_starting_again_with_the_same_id_says_it_existed(app: App, worker: Engine) -> None:
    first = ok(app, "start", "expense", "--input", "[5]", "--run-id", "again-1").stdout
    assert first.startswith("started run again-1 (expense)")
    second = ok(app, "start", "expense", "--input", "[5]", "--run-id", "again-1").stdout
    assert second.startswith("run again-1 already existed (expense): ")
    fails(
        run_cli("--db", app.db, "start", "expense", "--input", "[6]", "--run-id", "again-1"),
        "already exists with a different workflow or input",
    )


# store errors reach the user ---------------------------------------------------------------


@pytest.mark.timeout(30)  # a damaged file used to hang reads for ever
def test_a_damaged_database_is_a_one_line_error(app: App, worker: Engine) -> None:
    for n in range(150):
        ok(app, "start", "expense", "--input", f"[{n}]", "--run-id", f"r-{n:04d}-" + "x" * 60)
    worker.sync.close()
    db = app.path / "app.db"
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\xa5" * (size - f.tell()))
    for args in (["runs", "list"], ["runs", "list", "--status", "completed"]):
        fails(run_cli("--db", app.db, *args), "damaged")  # on opening or reading: the layout


def test_an_in_memory_url_is_refused(tmp_path: Path) -> None:
    fails(run_cli("--db", "sqlite:///:memory:", "db", "upgrade"), "in-memory databases are not")


# passwords stay out of sight -----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://app:s3cret@db.internal:5432/signoff",
            "postgresql://app:***@db.internal:5432/signoff",
        ),
        ("postgres://app:p%40ss@db/x?sslmode=require", "postgres://app:***@db/x?sslmode=require"),
        (
            "postgresql://app@db/x?password=s3cret&sslmode=require",
            "postgresql://app@db/x?password=***&sslmode=require",
        ),
        ("postgresql://app@db/x", "postgresql://app@db/x"),
        ("postgresql://app:p@ss:w0rd@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("postgresql://:s3cret@db/x", "postgresql://:***@db/x"),
        ("sqlite:////abs/path.db", "sqlite:////abs/path.db"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert core.redact_url(url) == shown
    assert core.redact_text(f"cannot reach {url} now") == f"cannot reach {shown} now"
    assert core.redact_text(f"cannot reach '{url}': x") == f"cannot reach '{shown}': x"


def test_input_that_does_not_fit_the_workflow_starts_nothing(app: App) -> None:
    fresh = f"sqlite:///{app.path / 'fresh.db'}"
    assert run_cli("--db", fresh, "db", "upgrade").exit_code == 0
    for given, fragment in (
        ('{"amount": "a lot"}', "amount"),
        ('{"amount": 1, "colour": "red"}', "colour"),
        ("[]", "amount"),
        ('{"amount": 1, "run_id": "x"}', "'run_id' is not a workflow argument"),
        ('{"amount": 1, "requested_by": "x"}', "use --requested-by"),
    ):
        fails(
            run_cli("--db", fresh, "start", "expense", "--input", given, "--app", app.ref),
            fragment,
        )
    assert json.loads(run_cli("--db", fresh, "runs", "list", "--json").stdout)["items"] == []


def test_worker_and_serve_take_the_app_from_app_or_ask_for_one(app: App) -> None:
    for command in ("worker", "serve"):
        fails(run_cli(command), "give the APP to run")
    empty = f"{app.name}_empty"
    (app.path / f"{empty}.py").write_text(cli_support.EMPTY_APP)
    try:
        fails(run_cli("--app", f"{empty}:engine", "worker"), "has no workflows")
        fails(run_cli("worker", "--app", f"{empty}:engine"), "has no workflows")
        fails(run_cli("worker", env={"SIGNOFF_APP": f"{empty}:engine"}), "has no workflows")
    finally:
        sys.modules.pop(empty, None)


def test_answer_a_question_with_text_or_json(app: App, worker: Engine) -> None:
    run = json.loads(ok(app, "start", "asks", "--json").stdout)
    assert worker.sync.settle(run["id"], timeout=10).status == "waiting"
    short = run["id"][:8]
    fails(run_cli("--db", app.db, "answer", short, "where", "--by", "dana"), "--text TEXT")
    fails(
        run_cli("--db", app.db, "approve", short, "where", "--by", "dana"),
        "is a question: answer it",
    )
    out = ok(app, "answer", short, "where", "--text", "Leeds", "--by", "dana").stdout
    assert "edited" in out or "answered" in out
    assert worker.sync.result(run["id"], timeout=10) == "Leeds"


def test_approvals_list_most_urgent_first_and_overdue(app: App, worker: Engine) -> None:
    paying = start_payment(app, worker)  # no deadline
    refund = start_waiting(app, worker)  # a 7-day deadline
    urgent = [a["run_id"] for a in inbox(app, "--order", "urgent")]
    assert urgent == [refund, paying]  # the deadline first, none last
    assert [a["run_id"] for a in inbox(app)] == [paying, refund]  # oldest first
    assert inbox(app, "--overdue") == []
    fails(run_cli("--db", app.db, "approvals", "list", "--order", "soonest"), "--order")
