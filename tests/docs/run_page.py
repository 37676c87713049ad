"""Run one page's python blocks in order in one namespace (a child process of the test).

`python run_page.py SPEC RESULT`: SPEC is JSON `[{"where", "code"}]`; RESULT receives
`[{"where", "ok", "stdout", "error"}]`, one entry per block run; the first failing block
ends the page (the blocks after it build on it). A block may use top-level `await` (as in
`python -m asyncio`); all of a page's awaiting blocks share one event loop, so an engine
opened in one block is still usable in the next. A block without `await` runs outside
the loop, so it may call `asyncio.run` itself (the README's example does).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import json
import os
import sys
import traceback
from typing import Any


def run(spec: list[dict[str, str]], result_path: str) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    results: list[dict[str, Any]] = []
    with asyncio.Runner() as runner:
        for block in spec:
            out = io.StringIO()
            try:
                code = compile(
                    block["code"], block["where"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
                )
                with contextlib.redirect_stdout(out):
                    if code.co_flags & inspect.CO_COROUTINE:
                        runner.run(eval(code, namespace))
                    else:
                        exec(code, namespace)
            except BaseException:
                results.append(
                    {
                        "where": block["where"],
                        "ok": False,
                        "stdout": out.getvalue(),
                        "error": traceback.format_exc(),
                    }
                )
                _save(results, result_path)
                break
            results.append(
                {"where": block["where"], "ok": True, "stdout": out.getvalue(), "error": ""}
            )
            _save(results, result_path)  # written as we go: a hang later loses nothing


def _save(results: list[dict[str, Any]], path: str) -> None:
    with open(path, "w") as f:
        json.dump(results, f)


def main() -> None:
    spec_path, result_path = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.getcwd())  # file blocks (`# file: flows.py`) import as modules
    with open(spec_path) as f:
        spec = json.load(f)
    run(spec, result_path)


if __name__ == "__main__":
    main()
