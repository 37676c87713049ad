"""Run the commands of `bash` and `console` blocks, one line at a time, for real.

- `bash`: every line is a command (`\\` continues a line, `#` starts a comment).
- `console`: lines starting with `$ ` are commands; the lines after one, up to the next
  command, are its expected output (stdout and stderr together): each expected line
  must match an output line, in order; `...` matches anything. Ids in the expected
  output stand for the ids the command really printed (see `Shell.ids`).

What a command may be, and how it is made real:
- `signoff ...` runs `python -m signoff` of this checkout. `signoff worker` and
  `signoff serve` run in the background until the block ends (then SIGTERM; they must
  exit cleanly); the next line runs once the worker says it started, or the server
  answers `/healthz` (`serve` gets a free `--port` unless the line names one).
- `python`, `.venv/bin/python`, `pytest` run this interpreter; paths under `bench/`,
  `examples/` and `scripts/` are the repository's.
- `createdb`, `dropdb`, `psql` run against the PostgreSQL server of the tests, and
  `curl` against the server the block started.
- `export NAME=VALUE` and `NAME=VALUE command` set environment variables.
Anything else fails the test: mark the block `<!-- not run: REASON -->` instead.

Placeholders: `RUN_ID` and `RUN` stand for the id of the run last started in the block
(from `signoff start`'s output); a documented id (or a prefix of it of 6+ characters)
stands for the real id that was printed in its place. Every PostgreSQL URL and the
database name of `createdb`/`dropdb` stand for one database the test creates for the
page and drops afterwards.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.ports import free_port

ROOT = Path(__file__).parents[2]
ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
HEX_ID = re.compile(r"\b[0-9a-f]{6,}\b")
STARTED = re.compile(r"started run ([0-9a-zA-Z_.:/-]+)")
PG_URL = re.compile(r"postgres(?:ql)?://[^\s'\"]+")
REPO_DIRS = ("bench/", "examples/", "scripts/")
COMMAND_TIMEOUT = 60


class DocsCommandError(AssertionError):
    pass


@dataclass
class Background:
    line: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Shell:
    cwd: Path
    pg_url: str | None = None  # the page's PostgreSQL database, if it uses one
    env: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # documented id -> real id
    last_run: str | None = None
    server_url: str | None = None
    background: list[Background] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    # blocks ------------------------------------------------------------------------

    def run_bash(self, text: str) -> None:
        for line in _logical_lines(text):
            self.run(line)

    def run_console(self, text: str) -> None:
        command: str | None = None
        expected: list[str] = []
        for raw in [*text.splitlines(), "$ "]:
            if raw.startswith("$ ") or raw == "$":
                if command:
                    # a command documented as failing (`error: ...`) must exit 2
                    fails = any(line.startswith("error:") for line in expected)
                    out = self.run(command, exit_code=2 if fails else 0)
                    if expected:
                        self.expect(command, expected, out)
                command, expected = raw[2:].strip(), []
            elif command is not None:
                expected.append(raw)

    def close(self) -> None:
        """Stop the background processes; each must exit cleanly."""
        problems = []
        for bg in reversed(self.background):
            if bg.proc.poll() is None:
                bg.proc.send_signal(signal.SIGTERM)
            try:
                bg.proc.wait(15)
            except subprocess.TimeoutExpired:
                bg.proc.kill()
                bg.proc.wait()
                problems.append(f"{bg.line!r} did not stop on SIGTERM")
            text = bg.log.read_text(errors="replace")
            if bg.proc.returncode not in (0, -signal.SIGTERM) or "Traceback" in text:
                problems.append(f"{bg.line!r} exited {bg.proc.returncode}:\n{text}")
        self.background.clear()
        if problems:
            raise DocsCommandError("\n".join(problems))

    # one command -------------------------------------------------------------------

    def run(self, line: str, exit_code: int = 0) -> str:
        words = self._substitute(shlex.split(line, comments=True))
        if not words:
            return ""
        env = {**os.environ, **self.env}
        while words and ASSIGN.match(words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if not words:
            return ""
        if words[0] == "export":
            for word in words[1:]:
                name, _, value = word.partition("=")
                self.env[name] = value
            return ""
        argv = self._argv(line, words)
        if words[0] == "signoff" and len(words) > 1 and _verb(words) in ("worker", "serve"):
            self._start_background(line, argv, env, serve=_verb(words) == "serve")
            return ""
        done = subprocess.run(
            argv, cwd=self.cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
        out = done.stdout + done.stderr
        self.transcript.append(f"$ {line}\n{out}")
        if done.returncode != exit_code:
            raise DocsCommandError(f"{line!r} exited {done.returncode}, not {exit_code}:\n{out}")
        started = STARTED.search(done.stdout)
        if started:
            self.last_run = started.group(1)
        return out.replace(str(self.cwd), "/home/me")

    def expect(self, command: str, expected: list[str], out: str) -> None:
        """Each expected line matches an output line, in order; ids map to real ones."""
        lines = out.splitlines()
        at = 0
        for want in expected:
            pattern, doc_ids = _pattern(want)
            while at < len(lines) and not (found := pattern.fullmatch(lines[at].rstrip())):
                at += 1
            if at == len(lines):
                raise DocsCommandError(
                    f"$ {command}\nexpected a line like:\n  {want}\nin the output:\n{out}"
                )
            for doc_id, real in zip(doc_ids, found.groups(), strict=True):
                self.ids.setdefault(doc_id, real)
            at += 1

    # helpers -----------------------------------------------------------------------

    def _substitute(self, words: list[str]) -> list[str]:
        out = []
        for word in words:
            if word in ("RUN_ID", "RUN") and self.last_run is not None:
                word = self.last_run
            elif HEX_ID.fullmatch(word):
                word = self._real_id(word)
            if self.pg_url is not None:
                word = PG_URL.sub(self.pg_url, word)
            out.append(word)
        return out

    def _real_id(self, word: str) -> str:
        for doc_id, real in self.ids.items():
            if doc_id.startswith(word):
                return real[: len(word)]
        return word

    def _argv(self, line: str, words: list[str]) -> list[str]:
        head, rest = words[0], words[1:]
        rest = [self._repo_path(w) for w in rest]
        if head == "signoff":
            return [sys.executable, "-m", "signoff", *rest]
        if head in ("python", "python3", ".venv/bin/python"):
            return [sys.executable, *rest]
        if head == "pytest":
            return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *rest]
        if head in ("createdb", "dropdb", "psql"):
            if self.pg_url is None:
                raise DocsCommandError(f"{line!r}: this page has no PostgreSQL database")
            if head in ("createdb", "dropdb"):
                rest = [*rest[:-1], self.pg_url.rsplit("/", 1)[1]]
            return [head, *rest]
        if head == "curl":
            if self.server_url is None:
                raise DocsCommandError(f"{line!r}: no server was started in this block")
            return ["curl", "-sS", *(w.replace("http://localhost:8000", self.server_url)
                                     for w in rest)]  # fmt: skip
        raise DocsCommandError(
            f"{line!r}: the docs harness does not run {head!r}; mark the block "
            "<!-- not run: REASON --> if it cannot run here"
        )

    def _repo_path(self, word: str) -> str:
        if word.startswith(REPO_DIRS) and not (self.cwd / word).exists():
            return str(ROOT / word)
        return word

    def _start_background(
        self, line: str, argv: list[str], env: dict[str, str], *, serve: bool
    ) -> None:
        if serve and "--port" not in argv:
            port = free_port()
            argv = [*argv, "--port", str(port)]
            self.server_url = f"http://127.0.0.1:{port}"
        log = self.cwd / f".background-{len(self.background)}.log"
        with log.open("wb") as f:
            proc = subprocess.Popen(argv, cwd=self.cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
        bg = Background(line, proc, log)
        self.background.append(bg)
        deadline = time.monotonic() + 20
        while not self._ready(bg, serve):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DocsCommandError(f"{line!r} did not start:\n{log.read_text()}")
            time.sleep(0.05)

    def _ready(self, bg: Background, serve: bool) -> bool:
        if not serve:
            return "worker started" in bg.log.read_text(errors="replace")
        try:
            return httpx.get(f"{self.server_url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False


def _verb(words: list[str]) -> str:
    """The command of a `signoff` line, past global options (`--db URL`, `--app APP`)."""
    i = 1
    while i < len(words) and words[i].startswith("-"):
        i += 1 if "=" in words[i] or words[i] in ("--json",) else 2
    return words[i] if i < len(words) else ""


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = pending + raw
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            lines.append(line)
    return lines


def _pattern(want: str) -> tuple[re.Pattern[str], list[str]]:
    """A regex for one expected line: `...` matches anything; each id-like hex word
    (6+ characters) matches any hex word, and is remembered as standing for it."""
    parts: list[str] = []
    doc_ids: list[str] = []
    pos = 0
    text = want.rstrip()
    for match in re.finditer(r"\.\.\.|\b[0-9a-f]{6,}\b", text):
        parts.append(re.escape(text[pos : match.start()]))
        if match.group() == "...":
            parts.append(".*?")
        else:
            doc_ids.append(match.group())
            parts.append("([0-9a-f]+)")
        pos = match.end()
    parts.append(re.escape(text[pos:]))
    return re.compile("".join(parts)), doc_ids
