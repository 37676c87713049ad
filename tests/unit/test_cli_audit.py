"""`signoff audit verify` and `signoff audit export`: the record checked in the database
and offline, and any change to it found."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff import Engine
from tests.unit import cli_support
from tests.unit.cli_support import App, fails, ok, run_cli, start_waiting


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    yield from cli_support.make_app(tmp_path, monkeypatch)


@pytest.fixture
def worker(app: App) -> Iterator[Engine]:
    yield from cli_support.run_worker(app)


@pytest.fixture
def decided(app: App, worker: Engine) -> str:
    """A run decided by two votes (a chain of several entries), and another run."""
    other = start_waiting(app, worker)
    ok(app, "approve", other, "manager", "--by", "carol")
    run = json.loads(ok(app, "start", "payment", "--input", "[700]", "--json").stdout)
    assert worker.sync.settle(run["id"], timeout=10).status == "waiting"
    ok(app, "approve", run["id"], "finance", "--by", "alice", "--reason", "fine")
    ok(app, "approve", run["id"], "finance", "--by", "bob")
    worker.sync.result(run["id"], timeout=10)
    return str(run["id"])


def test_verify_and_export_an_intact_record(app: App, decided: str, tmp_path: Path) -> None:
    out = ok(app, "audit", "verify").stdout
    assert out.startswith("intact: ") and "chain(s)" in out
    assert json.loads(ok(app, "audit", "verify", "--json").stdout)["problems"] == []
    assert (
        json.loads(ok(app, "audit", "verify", "--run", decided[:8], "--json").stdout)["chains"] == 1
    )

    lines = ok(app, "audit", "export").stdout.splitlines()
    entries = [json.loads(line) for line in lines]
    assert decided in {e["chain"] for e in entries}
    decision = next(e for e in entries if e["chain"] == decided)
    assert decision["actor"] == "alice"

    export = tmp_path / "audit.jsonl"
    ok(app, "audit", "export", "--run", decided, "--output", str(export))
    exported = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(exported) >= 2 and {e["chain"] for e in exported} == {decided}
    offline = run_cli("audit", "verify", "--file", str(export), "--db", "sqlite:///nowhere.db")
    assert offline.exit_code == 0 and offline.stdout.startswith("intact: ")
    assert not (tmp_path / "nowhere.db").exists()  # offline: no database opened


def test_a_changed_export_is_found_offline(app: App, decided: str, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    ok(app, "audit", "export", "--run", decided, "--output", str(export))
    lines = export.read_text().splitlines()
    assert len(lines) >= 2
    entry = json.loads(lines[0])
    entry["actor"] = "mallory"
    export.write_text("\n".join([json.dumps(entry), *lines[1:]]) + "\n")
    result = run_cli("audit", "verify", "--file", str(export))
    assert result.exit_code == 2
    assert "its content does not match its hash (changed)" in result.stdout
    assert result.stderr.startswith("error: the audit record is not intact: 1 problem(s)")

    export.write_text("\n".join(lines[1:]) + "\n")  # the first entry removed
    fails(run_cli("audit", "verify", "--file", str(export)), "not intact")
    export.write_text("not json\n")
    fails(run_cli("audit", "verify", "--file", str(export)), "line 1 of")


def test_a_change_in_the_database_is_found(app: App, decided: str, worker: Engine) -> None:
    worker.sync.close()
    with sqlite3.connect(app.path / "app.db") as conn:
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 1")
    result = run_cli("--db", app.db, "audit", "verify")
    assert result.exit_code == 2 and "(changed)" in result.stdout
    assert "not intact" in result.stderr
