"""The README's promises hold: its example runs, and the commands it shows exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from signoff import cli

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_example_runs_and_refunds(tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "'status': 'refunded'" in done.stdout
    for event in ("run_started", "approval_requested", "approval_decided", "run_completed"):
        assert event in done.stdout


def test_readme_cli_lines_name_real_commands() -> None:
    block = re.findall(r"```bash\n(.*?)```", README, re.S)[1]
    commands = [line.split()[1:3] for line in block.splitlines() if line.startswith("signoff ")]
    assert commands
    runner = CliRunner()
    for words in commands:
        path = [w for w in words if w.isalpha() or "-" in w]
        if path and path[-1].isupper():
            path = path[:-1]
        result = runner.invoke(cli.cli, [*path, "--help"])
        assert result.exit_code == 0, (words, result.output)


def test_readme_links_to_docs_that_exist() -> None:
    links = re.findall(r"\]\((docs/[^)]+)\)", README)
    for link in links:
        assert (ROOT / link).is_file(), link
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")}
    assert pages <= set(links), f"not linked from the README: {sorted(pages - set(links))}"
    assert len(README.splitlines()) <= 152


def test_every_code_block_of_the_docs_is_run_by_a_test() -> None:
    """tests/docs/test_docs_run.py runs them; it must cover every page there is."""
    from tests.docs.test_docs_run import PAGES

    assert "README.md" in PAGES
    assert {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")} <= set(PAGES)
