"""Find the fenced code blocks of a Markdown page, with the marker written above each.

Markers are HTML comments on the line right above the fence (a blank line between is
allowed); readers of the rendered page do not see them, readers of the source do:

- `<!-- not run: REASON -->`: the block is not executed; REASON (a few words at least)
  says why, for example that it needs a second machine.
- `<!-- output -->` above a ```` ```text ```` block: the expected stdout of the python
  block before it (doctest rules: `...` matches anything, whitespace is normalized).
- `<!-- run in a new directory -->` above a shell block: it runs in an empty directory
  of its own instead of the page's, which reads as `/home/me` in its output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
MARKER = re.compile(r"^<!--\s*(.*?)\s*-->$")
FILE_LINE = re.compile(r"^(?:#|//)\s*file:\s*(\S+)\s*$")


@dataclass(frozen=True)
class Block:
    page: str  # the page, relative to the repository root
    line: int  # the line of the opening fence (1-based)
    lang: str  # the fence's info string: python, bash, console, ...; "" if none
    text: str
    marker: str | None  # the text of the HTML comment right above, if any

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def not_run_reason(self) -> str | None:
        if self.marker is not None and self.marker.startswith("not run"):
            return self.marker.removeprefix("not run").lstrip(" :").strip()
        return None

    @property
    def is_output(self) -> bool:
        return self.marker == "output"

    @property
    def new_directory(self) -> bool:
        return self.marker == "run in a new directory"

    @property
    def file_name(self) -> str | None:
        """`# file: NAME` on the first line: the block is that file of the page's
        directory (written, not executed)."""
        first = self.text.split("\n", 1)[0]
        match = FILE_LINE.match(first)
        return match.group(1) if match else None


def blocks(root: Path, page: str) -> list[Block]:
    lines = (root / page).read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang = match.group(1), match.group(2)
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1  # past the closing fence
        found.append(Block(page, start + 1, lang, "\n".join(body) + "\n", _marker(lines, start)))
    return found


def _marker(lines: list[str], fence: int) -> str | None:
    j = fence - 1
    if j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0 or not lines[j].rstrip().endswith("-->"):
        return None
    end = j
    while j > 0 and "<!--" not in lines[j]:  # a comment may take several lines
        j -= 1
    match = MARKER.match(" ".join(line.strip() for line in lines[j : end + 1]))
    return match.group(1) if match else None
