"""`tune_gc` in a process of its own (it changes the whole process's collector)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
import signoff
kept = [[] for _ in range(1000)]  # objects alive before: frozen, not collected later
before = gc.get_freeze_count()
signoff.tune_gc()
print(gc.get_threshold(), before, gc.get_freeze_count() >= 1000)
"""


def test_tune_gc_freezes_what_is_loaded_and_raises_the_thresholds() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split("\n")[0] == "(20000, 20, 20) 0 True"
