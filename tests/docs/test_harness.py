"""The docs harness itself: markers it insists on, and failures it must not miss."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.blocks import blocks
from tests.docs.shell import DocsCommandError, Shell
from tests.docs.test_docs_run import APP, marker_problems


def page(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "page.md").write_text(text)
    return marker_problems(blocks(tmp_path, "page.md"))


def test_markers_are_read(tmp_path: Path) -> None:
    (tmp_path / "page.md").write_text(
        "<!-- not run: needs a second machine -->\n```bash\nssh b\n```\n\n"
        "```python\n# file: flows.py\nX = 1\n```\n"
        "```python\nprint(1)\n```\n<!-- output -->\n```text\n1\n```\n"
        "<!-- not run:\n  two lines of reason -->\n\n```json\n{}\n```\n"
    )
    found = blocks(tmp_path, "page.md")
    assert [b.lang for b in found] == ["bash", "python", "python", "text", "json"]
    assert found[0].not_run_reason == "needs a second machine"
    assert found[1].file_name == "flows.py"
    assert found[3].is_output and found[2].marker is None
    assert found[4].not_run_reason == "two lines of reason"
    assert marker_problems(found) == []


def test_a_block_that_does_not_run_must_say_why(tmp_path: Path) -> None:
    [problem] = page(tmp_path, "```json\n{}\n```\n")
    assert "page.md:1: a ```json block that does not run" in problem
    [problem] = page(tmp_path, "<!-- not run -->\n```\nx\n```\n")
    assert "needs a reason" in problem
    [problem] = page(tmp_path, "<!-- not run: run by tests/nowhere.py -->\n```\nx\n```\n")
    assert "tests/nowhere.py, which is missing" in problem
    [problem] = page(tmp_path, "<!-- output -->\n```text\n1\n```\n")
    assert "output block" in problem


def test_console_output_must_match(tmp_path: Path) -> None:
    shell = Shell(tmp_path)
    shell.run_console("$ python -c 'print(\"hello world\")'\nhello ...\n")
    with pytest.raises(DocsCommandError, match="expected a line like"):
        shell.run_console("$ python -c 'print(\"hello world\")'\ngoodbye ...\n")


def test_exit_codes_are_checked(tmp_path: Path) -> None:
    shell = Shell(tmp_path)
    with pytest.raises(DocsCommandError, match="exited 3, not 0"):
        shell.run_bash("python -c 'raise SystemExit(3)'\n")
    # a command shown failing (`error: ...` below it) must exit 2
    shell.run_console("$ python -c 'import sys; print(\"error: no\"); sys.exit(2)'\nerror: no\n")
    with pytest.raises(DocsCommandError, match="exited 0, not 2"):
        shell.run_console("$ python -c 'print(\"error: no\")'\nerror: no\n")


def test_documented_ids_stand_for_real_ones(tmp_path: Path) -> None:
    shell = Shell(tmp_path)
    shell.run_console(
        "$ python -c 'print(\"started run 0123456789abcdef (refund)\")'\n"
        "started run 6f1c2a9e04b1 (refund)\n"
        "$ python -c 'import sys; assert sys.argv[1] == \"012345\"' 6f1c2a\n"
    )
    assert shell.ids == {"6f1c2a9e04b1": "0123456789abcdef"}
    assert shell.last_run == "0123456789abcdef"


def test_unknown_commands_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DocsCommandError, match="does not run 'ssh'"):
        Shell(tmp_path).run_bash("ssh elsewhere signoff worker\n")


def test_a_served_app_answers_curl(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    shell = Shell(tmp_path)
    try:
        shell.run_console(
            "$ signoff serve app:engine --no-auth      # in the background until the end\n"
            "$ curl http://localhost:8000/healthz\n"
            '{"status":"ok","worker":"running"}\n'
        )
    finally:
        shell.close()
