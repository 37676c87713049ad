"""Every `signoff ...` line in the docs' code blocks names a real command (a leaf, not a
group such as `signoff approvals`) and only options that command has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from signoff import cli

ROOT = Path(__file__).parents[2]
DOCS = sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"])


def _command_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip().removeprefix("$ ")
            words = line.split()
            while words and re.fullmatch(r"[A-Z_]+=\S+", words[0]):  # VAR=value signoff ...
                words.pop(0)
            if words and words[0] == "signoff":
                lines.append(" ".join(words))
    return lines


def _resolve(line: str) -> tuple[click.Command, list[tuple[str, str]]]:
    """The command a line runs and the options it passes."""
    words = shlex.split(line)[1:]
    command: click.Command = cli.cli
    options: list[tuple[str, str]] = []
    while words:
        word = words.pop(0)
        if word.startswith("-"):
            options.append((command.name or "", word.split("=")[0]))
            param = next((p for p in command.params if word.split("=")[0] in p.opts), None)
            if param is not None and not getattr(param, "is_flag", False) and "=" not in word:
                words = words[1:]  # its value
        elif isinstance(command, click.Group) and word in command.commands:
            command = command.commands[word]
        elif isinstance(command, click.Group):
            raise AssertionError(f"{line!r}: {word!r} is not a command of {command.name}")
    return command, options


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_command_lines_run_real_commands(doc: Path) -> None:
    for line in _command_lines(doc.read_text()):
        command, options = _resolve(line)
        assert not isinstance(command, click.Group), f"{doc.name}: {line!r} names a group"
        known = {o for p in [*command.params, *cli.cli.params] for o in getattr(p, "opts", [])}
        unknown = [o for _, o in options if o not in known and o not in ("-h", "--help")]
        assert unknown == [], f"{doc.name}: {line!r}"


def test_the_checker_finds_a_group_used_as_a_command() -> None:
    command, _ = _resolve("signoff approvals")
    assert isinstance(command, click.Group)
    assert _command_lines("```\nSIGNOFF_DATABASE_URL=x signoff approvals\n```\n") == [
        "signoff approvals"
    ]
