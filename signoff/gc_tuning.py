"""Garbage-collector settings for a process that mostly runs signoff (a worker, a server).

A busy worker allocates briefly-lived objects by the hundred per run; with CPython's
default thresholds the cyclic collector then runs a full collection every few hundred
runs, and each walks every object of the process (its modules, your app, the
framework): about a fifth of a busy worker's CPU. `tune_gc` freezes what exists once the
app is loaded (the collector no longer walks it) and lets the youngest generation grow
larger before a collection. `signoff worker` and `signoff serve` call it; call it
yourself after your imports in a process of your own that runs an engine.
"""

from __future__ import annotations

import gc

YOUNG = 20_000  # allocations between collections of the youngest generation (default 700)
OLDER = 20  # collections of one generation between collections of the next (default 10)


def tune_gc() -> None:
    """Collect once, freeze what survives, and raise the collection thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, OLDER, OLDER)
