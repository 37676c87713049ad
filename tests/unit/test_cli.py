"""The `signoff` CLI, through click's CliRunner, against real SQLite files.

A small app module is written to tmp_path for each test; a worker for it runs in a
background thread (`with engine.sync:`) while the CLI, in the test's thread, opens its own
engine on the same file, as it would in another process.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from signoff import Engine, cli
from tests.unit import cli_support
from tests.unit.cli_support import EMPTY_APP, App, fails, ok, run_cli, start_waiting


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    yield from cli_support.make_app(tmp_path, monkeypatch)


@pytest.fixture
def worker(app: App) -> Iterator[Engine]:
    yield from cli_support.run_worker(app)


# starting runs ---------------------------------------------------------------------------


def test_start_runs_a_workflow_known_to_the_database(app: App, worker: Engine) -> None:
    out = ok(
        app,
        "start",
        "expense",
        "--input",
        '{"amount": 12, "who": "bo"}',
        "--requested-by",
        "carol",
        "--run-id",
        "exp-1",
    ).stdout
    assert re.fullmatch(r"started run exp-1 \(expense\): \w+\n", out)
    assert worker.sync.result("exp-1", timeout=10) == {"amount": 12, "who": "bo"}
    assert worker.sync.get_run("exp-1").requested_by == "carol"
    # the same id again is the same run, not a second one
    ok(app, "start", "expense", "--input", '{"amount": 12, "who": "bo"}', "--run-id", "exp-1")
    assert len(worker.sync.list_runs(workflow="expense")) == 1


def test_start_takes_an_array_as_positional_arguments(app: App, worker: Engine) -> None:
    run = json.loads(ok(app, "start", "expense", "--input", "[7]", "--json").stdout)
    assert run["workflow"] == "expense" and run["args"] == [7]
    assert worker.sync.result(run["id"], timeout=10) == {"amount": 7, "who": "nobody"}


def test_start_with_app_checks_its_registry_without_any_worker(app: App) -> None:
    # a fresh database: no worker ever registered a workflow in it
    fresh = f"sqlite:///{app.path / 'fresh.db'}"
    result = run_cli("--db", fresh, "start", "expense", "--input", "[1]", "--app", app.ref)
    assert result.exit_code == 0, result.output
    runs = json.loads(run_cli("--db", fresh, "runs", "list", "--json").stdout)["items"]
    assert [(r["workflow"], r["status"]) for r in runs] == [("expense", "pending")]
    fails(run_cli("--db", fresh, "start", "expense"), "no workflow named 'expense'")
    fails(
        run_cli("--db", fresh, "start", "nope", "--app", app.ref),
        "has no workflow named 'nope' "
        "(known: asks, chained, expense, flaky, payment, refund, waiter)",
    )


def test_start_refuses_unknown_workflows_and_bad_input(app: App, worker: Engine) -> None:
    fails(run_cli("--db", app.db, "start", "nope"), "no workflow named 'nope'")
    fails(
        run_cli("--db", app.db, "start", "expense", "--input", "{amount: 1}"),
        "--input is not valid JSON",
    )
    fails(run_cli("--db", app.db, "start", "expense", "--input", "[NaN]"), "NaN")
    fails(
        run_cli("--db", app.db, "start", "expense", "--input", '"text"'),
        "--input must be a JSON object (keyword arguments) or array",
    )
    assert worker.sync.list_runs() == []


# listing and showing ---------------------------------------------------------------------


def test_runs_list_filters_and_prints_a_table(app: App, worker: Engine) -> None:
    waiting = start_waiting(app, worker)
    ok(app, "start", "expense", "--input", "[3]", "--run-id", "done-1")
    worker.sync.result("done-1", timeout=10)
    table = ok(app, "runs", "list").stdout
    assert waiting in table and "done-1" in table and "approval:manager" in table
    only = json.loads(ok(app, "runs", "list", "--status", "waiting", "--json").stdout)
    assert [r["id"] for r in only["items"]] == [waiting] and only["next_cursor"] is None
    by_wf = json.loads(ok(app, "runs", "list", "--workflow", "expense", "--json").stdout)
    assert [r["id"] for r in by_wf["items"]] == ["done-1"]
    first = json.loads(ok(app, "runs", "list", "--limit", "1", "--json").stdout)
    assert len(first["items"]) == 1 and first["next_cursor"]
    rest = ok(app, "runs", "list", "--limit", "1", "--cursor", first["next_cursor"], "--json")
    second = json.loads(rest.stdout)
    assert len(second["items"]) == 1 and second["items"][0]["id"] != first["items"][0]["id"]
    assert "more: signoff runs list --cursor" in ok(app, "runs", "list", "--limit", "1").stdout
    fails(run_cli("--db", app.db, "runs", "list", "--cursor", "garbage"), "cursor")
    assert ok(app, "runs", "list", "--status", "failed").stdout == "no runs\n"
    fails(
        run_cli("--db", app.db, "runs", "list", "--status", "bogus"),
        "unknown status 'bogus'; use one of: pending, running, waiting",
    )


def test_approvals_list_shows_pending_approvals(app: App, worker: Engine) -> None:
    first = start_waiting(app, worker, "ord-1")
    second = start_waiting(app, worker, "ord-22")
    table = ok(app, "approvals", "list").stdout
    for column in (
        "run",
        "workflow",
        "key",
        "round",
        "summary",
        "proposed",
        "requested",
        "deadline",
    ):
        assert column in table
    assert first[:12] in table and second[:12] in table  # a 12-character prefix names a run
    for column in ("approvers", "votes", "digest"):
        assert column in table
    assert "Refund [bold]45[/bold]" in table  # user text is shown as is, not as markup
    rows = json.loads(ok(app, "approvals", "list", "--run", second, "--json").stdout)["items"]
    assert [(a["run_id"], a["key"], a["proposed"]) for a in rows] == [
        (second, "manager", {"amount": 46})
    ]
    assert ok(app, "approvals", "list", "--workflow", "expense").stdout == (
        "no pending approvals\n"
    )


def test_runs_show_prints_fields_approvals_and_timeline(app: App, worker: Engine) -> None:
    run_id = start_waiting(app, worker)
    ok(app, "approve", run_id, "manager", "--by", "alice", "--reason", "fine")
    assert worker.sync.result(run_id, timeout=10)["status"] == "approved"
    out = ok(app, "runs", "show", run_id).stdout
    assert "completed" in out and "approvals" in out and "timeline" in out
    events = [
        "run_started",
        "step_completed",
        "approval_requested",
        "approval_decided",
        "run_completed",
    ]
    positions = [out.index(event) for event in events]
    assert positions == sorted(positions)
    decided = next(line for line in out.splitlines() if "approval_decided" in line)
    assert "alice" in decided and "status=approved" in decided and "reason=fine" in decided
    shown = json.loads(ok(app, "runs", "show", run_id, "--json").stdout)
    assert shown["run"]["status"] == "completed"
    assert [e["type"] for e in shown["history"]] == events
    assert shown["approvals"][0]["decided_by"] == "alice"


def test_unknown_runs_are_one_line_errors(app: App, worker: Engine) -> None:
    for args in (
        ["runs", "show", "nope"],
        ["runs", "cancel", "nope"],
        ["runs", "retry", "nope"],
        ["approve", "nope", "manager", "--by", "x"],
        ["signal", "nope", "docs"],
    ):
        fails(run_cli("--db", app.db, *args), "nope")


# decisions -------------------------------------------------------------------------------


def test_approve_then_conflicting_decision(app: App, worker: Engine) -> None:
    run_id = start_waiting(app, worker)
    out = ok(app, "approve", run_id, "manager", "--by", "alice").stdout
    assert out == f"approved: approval 'manager' (round 1) of run {run_id} by alice\n"
    assert worker.sync.result(run_id, timeout=10) == {
        "status": "approved",
        "value": {"amount": 45},
        "by": "alice",
    }
    # the same decision again is acknowledged; a different one is refused
    ok(app, "approve", run_id, "manager", "--by", "alice")
    fails(
        run_cli("--db", app.db, "reject", run_id, "manager", "--by", "bob"),
        "was already approved by alice; the first decision stands",
    )


def test_reject(app: App, worker: Engine) -> None:
    run_id = start_waiting(app, worker)
    decision = json.loads(
        ok(app, "reject", run_id, "manager", "--reason", "no", "--by", "bo", "--json").stdout
    )
    assert decision["status"] == "rejected" and decision["reason"] == "no"
    assert worker.sync.result(run_id, timeout=10)["status"] == "rejected"


def test_edit_with_a_json_value(app: App, worker: Engine) -> None:
    run_id = start_waiting(app, worker)
    fails(
        run_cli("--db", app.db, "edit", run_id, "manager", "--value", "{amount: 1}", "--by", "b"),
        "--value is not valid JSON",
    )
    fails(
        run_cli("--db", app.db, "edit", run_id, "manager", "--value", '{"a": Inf}', "--by", "b"),
        "--value is not valid JSON",
    )
    missing = run_cli("--db", app.db, "edit", run_id, "manager", "--by", "b")
    assert missing.exit_code == 2 and "Missing option '--value'" in missing.stderr
    ok(app, "edit", run_id, "manager", "--value", '{"amount": 10}', "--by", "bob")
    assert worker.sync.result(run_id, timeout=10) == {
        "status": "edited",
        "value": {"amount": 10},
        "by": "bob",
    }


def test_request_changes(app: App, worker: Engine) -> None:
    run_id = start_waiting(app, worker)
    out = ok(app, "request-changes", run_id, "manager", "--reason", "lower", "--by", "b").stdout
    assert out.startswith("changes_requested: approval 'manager'")
    assert worker.sync.result(run_id, timeout=10)["status"] == "changes_requested"


def test_unknown_key_is_a_one_line_error(app: App, worker: Engine) -> None:
    run_id = start_waiting(app, worker)
    fails(
        run_cli("--db", app.db, "approve", run_id, "cfo", "--by", "alice"),
        f"run {run_id} has no approval 'cfo' (its approvals: 'manager')",
    )


@pytest.mark.parametrize("variable", ["SIGNOFF_ACTOR", "SIGNOFF_BY"])
def test_by_comes_from_the_environment(app: App, worker: Engine, variable: str) -> None:
    run_id = start_waiting(app, worker)
    ok(app, "approve", run_id, "manager", env={variable: "env-user"})
    assert worker.sync.result(run_id, timeout=10)["by"] == "env-user"


# signals, cancel, retry ------------------------------------------------------------------


def test_signal_delivers_json_data(app: App, worker: Engine) -> None:
    run = json.loads(ok(app, "start", "waiter", "--json").stdout)
    fails(
        run_cli("--db", app.db, "signal", run["id"], "docs", "--data", "[1,"),
        "--data is not valid JSON",
    )
    out = ok(app, "signal", run["id"], "docs", "--data", '{"pages": 3}', "--by", "dan").stdout
    assert out == f"sent signal 'docs' to run {run['id']}\n"
    assert worker.sync.result(run["id"], timeout=10) == {"pages": 3}
    received = [e for e in worker.sync.history(run["id"]) if e.type == "signal_received"]
    assert [(e.actor, e.data["name"]) for e in received] == [("dan", "docs")]


def test_cancel(app: App, worker: Engine) -> None:
    run_id = start_waiting(app, worker)
    out = ok(app, "runs", "cancel", run_id, "--by", "eve", "--reason", "dup").stdout
    assert out == f"cancelled run {run_id} (refund): cancelled\n"
    event = worker.sync.history(run_id)[-1]
    assert (event.type, event.actor, event.data) == ("run_cancelled", "eve", {"reason": "dup"})
    fails(run_cli("--db", app.db, "runs", "cancel", run_id), run_id)
    fails(run_cli("--db", app.db, "approve", run_id, "manager", "--by", "al"), "has ended")


def test_retry_resumes_a_failed_run(app: App, worker: Engine) -> None:
    run = json.loads(ok(app, "start", "flaky", "--json").stdout)
    assert worker.sync.settle(run["id"], timeout=10).status == "failed"
    shown = ok(app, "runs", "show", run["id"]).stdout
    assert "RuntimeError: the service is down" in shown and "step_failed" in shown
    (app.path / "fixed").write_text("")
    out = ok(app, "runs", "retry", run["id"], "--by", "ops").stdout
    assert out.startswith(f"retrying run {run['id']} (flaky): ")
    assert worker.sync.result(run["id"], timeout=10) == "ok"
    fails(run_cli("--db", app.db, "runs", "retry", run["id"]), run["id"])


# worker and APP --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("nomodule", 'APP must look like "module:engine"'),
        ("no_such_module_xyz:engine", "cannot import 'no_such_module_xyz'"),
        ("{app}:missing", "has no attribute 'missing'"),
        ("{app}:not_an_engine", "is a int, not a signoff Engine"),
        ("{app}_broken:engine", "_broken' failed: ZeroDivisionError"),
        ("{app}_empty:engine", "has no workflows"),
    ],
)
def test_worker_app_that_does_not_import(app: App, ref: str, fragment: str) -> None:
    (app.path / f"{app.name}_broken.py").write_text("x = 1 / 0\n")
    (app.path / f"{app.name}_empty.py").write_text(EMPTY_APP)
    try:
        fails(run_cli("--db", app.db, "worker", ref.format(app=app.name)), fragment)
    finally:
        sys.modules.pop(f"{app.name}_empty", None)


def test_worker_rejects_bad_durations(app: App) -> None:
    fails(run_cli("worker", app.ref, "--lease", "soon"), "--lease='soon' is not a duration")
    fails(
        run_cli("worker", app.ref, env={"SIGNOFF_WORKER_POLL_INTERVAL": "x"}),
        "--poll-interval='x' is not a duration",
    )
    bad = run_cli("worker", app.ref, "--concurrency", "0")
    assert bad.exit_code == 2 and "--concurrency" in bad.stderr


def test_start_with_app_that_does_not_import(app: App) -> None:
    fails(
        run_cli("--db", app.db, "start", "refund", "--app", "nope_mod:engine"),
        "cannot import 'nope_mod'",
    )


# database and settings -------------------------------------------------------------------


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    result = run_cli("--db", url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"{re.escape(url)}: schema version [1-9]\d*\n", result.stdout)
    assert (tmp_path / "new.db").exists()


def test_database_path_that_cannot_be_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    fails(run_cli("--db", url, "db", "upgrade"), "cannot open the SQLite database")
    for args in (["runs", "list"], ["approvals", "list"], ["approve", "r", "k", "--by", "a"]):
        fails(run_cli("--db", url, *args), "no SQLite database at")
    fails(run_cli("--db", "mysql://x", "runs", "list"), "unsupported database URL")


def test_database_from_env_or_after_the_command(app: App, worker: Engine) -> None:
    ok(app, "start", "expense", "--input", "[1]", "--run-id", "r1")
    assert "r1" in run_cli("runs", "list", env={"SIGNOFF_DATABASE_URL": app.db}).stdout
    assert "r1" in run_cli("runs", "list", "--db", app.db).stdout
    # default: ./signoff.db (chdir'd), which does not exist and is not created
    fails(run_cli("runs", "list"), "no SQLite database at")
    assert not (app.path / "signoff.db").exists()


def test_options_come_from_signoff_environment_variables(app: App, worker: Engine) -> None:
    waiting = start_waiting(app, worker)
    env = {"SIGNOFF_RUNS_LIST_STATUS": "waiting", "SIGNOFF_JSON": "1"}
    runs = json.loads(ok(app, "runs", "list", env=env).stdout)["items"]
    assert [r["id"] for r in runs] == [waiting]


def test_usage_errors_exit_2() -> None:
    assert run_cli("frobnicate").exit_code == 2
    assert run_cli("runs", "list", "--limit", "zero").exit_code == 2
    assert run_cli("approve", "only-run").exit_code == 2


# documentation ---------------------------------------------------------------------------


def _commands(group: click.Group, prefix: str) -> Iterator[tuple[str, click.Command, str]]:
    for name, command in group.commands.items():
        path = f"{prefix} {name}".strip()
        env_prefix = "SIGNOFF_" + path.replace(" ", "_").replace("-", "_").upper()
        if isinstance(command, click.Group):
            yield from _commands(command, path)
        else:
            yield path, command, env_prefix


def _documented_names() -> list[tuple[str, str]]:
    names: list[tuple[str, str]] = [("signoff", "SIGNOFF_DATABASE_URL")]
    roots = [("", cli.cli, "SIGNOFF"), *_commands(cli.cli, "")]
    for path, command, env_prefix in roots:
        names.append((path, f"signoff {path}"))
        for param in command.params:
            if param.name in ("help", "version"):
                continue
            if not isinstance(param, click.Option):
                if param.envvar:
                    names.append((path, str(param.envvar)))
                continue
            names.append((path, max(param.opts, key=len)))
            if isinstance(param.envvar, list | tuple):
                names += [(path, str(name)) for name in param.envvar]
            elif param.envvar:
                names.append((path, str(param.envvar)))
            elif param.allow_from_autoenv and param.name != "help":
                names.append((path, f"{env_prefix}_{param.name}".upper()))
    return names


def test_every_command_option_and_env_var_is_documented() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    missing = [f"{path}: {name}" for path, name in _documented_names() if name not in docs]
    assert missing == []


def test_main_is_the_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    assert "runs" in capsys.readouterr().out


def test_runs_purge_counts_archives_and_removes_finished_runs(
    app: App, worker: Engine, tmp_path: Path
) -> None:
    ok(app, "start", "expense", "--input", "[5]", "--run-id", "old-1")
    assert worker.sync.result("old-1", timeout=10) == {"amount": 5, "who": "nobody"}
    waiting = start_waiting(app, worker)
    out = ok(app, "runs", "purge", "--older-than", "0s", "--dry-run").stdout
    assert out.startswith("would remove 1 run(s), 0 idempotency record(s)")
    assert worker.sync.get_run("old-1").status == "completed"
    archive = tmp_path / "runs.jsonl"
    out = ok(app, "runs", "purge", "--older-than", "0s", "--archive", str(archive)).stdout
    assert out.startswith("removed 1 run(s)") and f"1 run(s) archived to {archive}" in out
    assert json.loads(archive.read_text())["run"]["id"] == "old-1"
    fails(run_cli("--db", app.db, "runs", "show", "old-1"), "no run with id 'old-1'")
    assert worker.sync.get_run(waiting).status == "waiting"
    fails(run_cli("--db", app.db, "runs", "purge", "--older-than", "soon"), "--older-than")
