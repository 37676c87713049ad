"""Docs are code: every code block of README.md and docs/*.md runs, or says why not.

Conventions (the markers are in `tests/docs/blocks.py`, the shell rules in
`tests/docs/shell.py`):

- Each page runs in a fresh temporary directory of its own, on its own SQLite files
  (and, if its commands name PostgreSQL, its own PostgreSQL database, dropped after).
- A page's `python` blocks run in order in one namespace, in one process: a block may
  use what an earlier block of the page defined, and may use top-level `await` (as in
  `python -m asyncio`). The first failing block fails the page. A `<!-- output -->`
  `text` block after a python block is that block's expected stdout.
- A block whose first line is `# file: NAME` is that file of the page's directory: it is
  written there before anything runs (python blocks import it, commands run it).
- `bash` and `console` blocks then run, in order, command by command, in the same
  directory; each must exit 0 (a `console` command whose expected output holds an
  `error:` line must exit 2). Their commands run against the page's database, and
  `app:engine` / `myapp:engine` is the small app below unless the page writes its own
  (on the page's PostgreSQL database, if it has one).
- Any other block (json, text, no language) runs only as one of the above; else it
  carries `<!-- not run: REASON -->` right above its fence, and the reason must say
  something (a few words). A reason that names a test file (`tests/...py`) names one
  that exists: the block is run there.
"""

from __future__ import annotations

import concurrent.futures
import doctest
import itertools
import json
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.docs import shell
from tests.docs.blocks import Block, blocks
from tests.pg_fixtures import admin_url, with_database

ROOT = Path(__file__).parents[2]
PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))]
RUNNABLE = {"python", "bash", "console"}
SHELL = {"bash", "console"}

# The app the documented commands use (`signoff worker myapp:engine`, `--app app:engine`):
# the README's refund review, on the page's `signoff.db`, or on the page's PostgreSQL
# database if its commands name one (as the app of docs/postgres.md would be).
SQLITE_APP_URL = "sqlite:///signoff.db"
APP = """
from signoff import Context, Engine, idempotency_key

engine = Engine("sqlite:///signoff.db")


def calculate_refund(order_id: str) -> int:
    return 12900


def issue_refund(order_id: str, amount: int) -> str:
    return f"refund {amount} for {order_id} under {idempotency_key()}"


@engine.workflow()
async def refund(ctx: Context, order_id: str) -> dict:
    amount = await ctx.step(calculate_refund, order_id)
    decision = await ctx.approval(
        "manager", summary=f"Refund {amount} cents for {order_id}", proposed={"amount": amount}
    )
    if not decision.approved:
        return {"status": decision.status.value}
    return {"status": "refunded", "receipt": await ctx.step(issue_refund, order_id, amount)}
"""

CHECKER = doctest.OutputChecker()
OUTPUT_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def page_blocks(page: str) -> list[Block]:
    return blocks(ROOT, page)


# every block runs or says why ------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_block_runs_or_says_why_not(page: str) -> None:
    problems = marker_problems(page_blocks(page))
    assert not problems, "\n".join(problems)


def marker_problems(found: list[Block]) -> list[str]:
    problems = []
    for i, block in enumerate(found):
        reason = block.not_run_reason
        if reason is not None:
            if len(reason.split()) < 3:
                problems.append(f"{block.where}: `not run` needs a reason of a few words")
            for named in _test_files_named(reason):
                if not (ROOT / named).is_file():
                    problems.append(f"{block.where}: the reason names {named}, which is missing")
            continue
        if block.is_output:
            before = found[i - 1] if i else None
            if before is None or before.lang != "python" or before.not_run_reason is not None:
                problems.append(f"{block.where}: an output block follows a python block that runs")
            continue
        if block.file_name is not None or block.lang in RUNNABLE:
            continue
        problems.append(
            f"{block.where}: a ```{block.lang or '(no language)'} block that does not run: "
            "make it python, bash or console, or mark it <!-- not run: REASON -->"
        )
    return problems


def _test_files_named(reason: str) -> list[str]:
    return [w.strip("`.,;:()") for w in reason.split() if w.strip("`.,;:()").startswith("tests/")]


# every page runs -------------------------------------------------------------------


@pytest.fixture(scope="session")
def page_outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, BaseException | None]:
    """Run the selected pages side by side (their time goes mostly to child processes
    and waiting for them); each page's test then reports its own outcome."""
    selected = [
        item.callspec.params["page"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_page_runs"
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            page: pool.submit(run_page, page, tmp_path_factory.mktemp("page")) for page in selected
        }
        return {page: future.exception() for page, future in futures.items()}


# All pages run in the first test's setup: a few seconds each on an idle machine (mostly
# starting `signoff` processes), much longer when the machine is busy.
@pytest.mark.timeout(240)
@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page: str, page_outcomes: dict[str, BaseException | None]) -> None:
    outcome = page_outcomes[page]
    if outcome is not None:
        raise outcome


def run_page(page: str, page_dir: Path) -> None:
    found = [b for b in page_blocks(page) if b.not_run_reason is None]
    code = [b for b in found if b.lang == "python" and b.file_name is None]
    commands = [b for b in found if b.lang in SHELL and b.file_name is None]
    with _database_for(commands) as pg_url:
        for block in found:
            if block.file_name is not None:
                (page_dir / block.file_name).write_text(block.text.split("\n", 1)[1])
        for name in ("app.py", "myapp.py"):
            if not (page_dir / name).exists():
                (page_dir / name).write_text(APP.replace(SQLITE_APP_URL, pg_url or SQLITE_APP_URL))
        if code:
            _run_python(code, _outputs(found), page_dir)
        if commands:
            _run_commands(commands, page_dir, pg_url)


def _outputs(found: list[Block]) -> dict[str, str]:
    """Expected stdout by the `where` of the python block it follows."""
    return {
        before.where: block.text for before, block in itertools.pairwise(found) if block.is_output
    }


def _run_python(code: list[Block], outputs: dict[str, str], cwd: Path) -> None:
    spec, result = cwd / ".blocks.json", cwd / ".results.json"
    spec.write_text(json.dumps([{"where": b.where, "code": b.text} for b in code]))
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "docs" / "run_page.py"), str(spec), str(result)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
    )
    results = json.loads(result.read_text()) if result.exists() else []
    for entry in results:
        assert entry["ok"], f"{entry['where']} failed:\n{entry['stdout']}{entry['error']}"
        want = outputs.get(entry["where"])
        if want is not None:
            assert CHECKER.check_output(want, entry["stdout"], OUTPUT_FLAGS), (
                f"{entry['where']} printed:\n{entry['stdout']}\nthe page shows:\n{want}"
            )
    assert len(results) == len(code), (
        f"the page's process ended after {len(results)} of {len(code)} python blocks "
        f"(exit {done.returncode}):\n{done.stdout}{done.stderr}"
    )
    assert done.returncode == 0, done.stderr
    for sign in ("Traceback", "never retrieved", "was never awaited"):
        assert sign not in done.stderr, done.stderr  # something failed in the background


def _run_commands(commands: list[Block], page_dir: Path, pg_url: str | None) -> None:
    ids: dict[str, str] = {}  # documented ids stand for the same real ones across blocks
    for block in commands:
        cwd = page_dir
        if block.new_directory:
            cwd = page_dir / f"new-{block.line}"
            cwd.mkdir()
        sh = shell.Shell(cwd, pg_url=pg_url, ids=ids)
        try:
            if block.lang == "console":
                sh.run_console(block.text)
            else:
                sh.run_bash(block.text)
        except shell.DocsCommandError as exc:
            sh.close()
            raise AssertionError(f"{block.where}: {exc}") from None
        sh.close()


class _NoDatabase:
    def __enter__(self) -> str | None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _database_for(commands: list[Block]) -> _NoDatabase | _PageDatabase:
    text = "".join(b.text for b in commands)
    if not shell.PG_URL.search(text) and "createdb" not in text:
        return _NoDatabase()
    return _PageDatabase(create="createdb" not in text)


class _PageDatabase:
    """A PostgreSQL database of the page's own; its commands may create it themselves."""

    def __init__(self, *, create: bool) -> None:
        self.admin = admin_url()
        self.name = f"signoff_docs_{uuid.uuid4().hex[:12]}"
        self.create = create

    def __enter__(self) -> str:
        if self.create:
            with psycopg.connect(self.admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
        return with_database(self.admin, self.name)

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
