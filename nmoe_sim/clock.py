"""Running the one simulated clock: a SimPy environment, with Python's garbage collector set
for simulation while it runs.

A simulation allocates events, messages and flows by the million, and nearly all of them die by
reference counting, young. CPython's cyclic collector still runs a young-generation pass every
700 net allocations and, as survivors pile up, full passes over every object the process holds:
the topology's graph, the routes, the data and the models. On the clock benchmark (a million
TCP transfers, simulated in 24 s) those passes took 2.9 s of the process. So, while the clock
runs:

- the objects that existed before it are frozen (`gc.freeze`): no pass walks them, and they are
  handed back to the collector when the clock stops;
- a young pass waits for `YOUNG_PASS_EVERY` allocations instead of 700: most of what the clock
  allocates is gone before then, so fewer passes find less to walk.

Memory is still freed as before: objects without reference cycles at once, cycles at the next
pass. Settings are restored however the run ends, and nested runs keep the outermost settings.
A program that froze objects itself (as forking servers do) keeps its freeze as it was: the clock
then freezes nothing, since unfreezing is all or nothing and would undo the program's own.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import simpy

YOUNG_PASS_EVERY = 10_000

_running = False  # a clock runs already: a run nested in it keeps its settings


def run_clock(env: simpy.Environment, until: Any = None) -> None:
    """`env.run(until)` under the simulation's collector settings."""
    with collector_for_simulation():
        env.run(until)


@contextmanager
def collector_for_simulation() -> Iterator[None]:
    global _running
    if _running:
        yield
        return
    young, middle, old = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    if young:  # 0: the user turned automatic collection off; so it stays
        gc.set_threshold(max(young, YOUNG_PASS_EVERY), middle, old)
    _running = True
    try:
        yield
    finally:
        _running = False
        gc.set_threshold(young, middle, old)
        if freeze:
            gc.unfreeze()
