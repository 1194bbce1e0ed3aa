"""The clock's collector settings: set while a simulation runs, restored however it ends."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Generator
from typing import Any

import pytest
import simpy

from nmoe_sim.clock import YOUNG_PASS_EVERY, run_clock


def _settings() -> tuple[tuple[int, int, int], int]:
    return gc.get_threshold(), gc.get_freeze_count()


def _settings_during_a_run() -> tuple[tuple[int, int, int], int]:
    """The collector's settings one simulated second into a clock run (which ends there)."""
    seen: list[tuple[tuple[int, int, int], int]] = []

    def watch(env: simpy.Environment) -> Generator[Any, Any, None]:
        yield env.timeout(1.0)
        seen.append(_settings())

    env = simpy.Environment()
    env.process(watch(env))
    run_clock(env)
    assert env.now == 1.0
    (during,) = seen
    return during


def _freeze_none() -> None:
    """The tests of the clock's own freeze need a process that froze nothing itself."""
    if gc.get_freeze_count():
        pytest.skip("something in this process froze objects before the test")


def test_the_collector_is_set_for_the_run_and_restored_after() -> None:
    _freeze_none()
    before = _settings()
    during = _settings_during_a_run()
    assert during[0] == (max(before[0][0], YOUNG_PASS_EVERY), *before[0][1:])
    assert during[1] > before[1]  # what existed before the run is frozen
    assert _settings() == before


def test_a_freeze_made_before_the_run_is_left_as_it_was() -> None:
    """A program's own freeze is neither added to nor handed back to the collector (unfreezing
    is all or nothing: it would undo the program's freeze too)."""
    already = gc.get_freeze_count()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        during = _settings_during_a_run()
        assert during[1] == frozen
        assert during[0][0] == max(gc.get_threshold()[0], YOUNG_PASS_EVERY)  # still set
        assert gc.get_freeze_count() == frozen
    finally:
        if not already:
            gc.unfreeze()


def test_settings_come_back_when_a_process_fails() -> None:
    before = _settings()

    def fail(env: simpy.Environment) -> Generator[Any, Any, None]:
        yield env.timeout(1.0)
        raise RuntimeError("boom")

    env = simpy.Environment()
    env.process(fail(env))
    with pytest.raises(RuntimeError, match="boom"):
        run_clock(env)
    assert _settings() == before


def wait(env: simpy.Environment) -> Generator[Any, Any, None]:
    yield env.timeout(1.0)


def test_a_clock_run_inside_another_keeps_the_outer_settings() -> None:
    _freeze_none()
    before = _settings()
    seen: list[tuple[tuple[int, int, int], int]] = []

    def outer(env: simpy.Environment) -> Generator[Any, Any, None]:
        inner = simpy.Environment()
        inner.process(wait(inner))
        run_clock(inner)  # e.g. serving's idle-delay probes, each on a clock of its own
        seen.append(_settings())
        yield env.timeout(1.0)

    env = simpy.Environment()
    env.process(outer(env))
    run_clock(env)
    assert seen[0][1] > before[1]  # still frozen after the inner run ended
    assert seen[0][0][0] == max(before[0][0], YOUNG_PASS_EVERY)
    assert _settings() == before


def test_garbage_cycles_made_during_a_run_are_still_collected_in_it() -> None:
    """Young passes still run, only less often: 3x YOUNG_PASS_EVERY cycles, each alive until a
    pass finds it, cannot all survive to the end of the run."""

    class Node:
        def __init__(self) -> None:
            self.me = self

    if not gc.isenabled():
        pytest.skip("automatic collection is off in this process")
    alive_at_end: list[int] = []

    def churn(env: simpy.Environment) -> Generator[Any, Any, None]:
        refs = []
        for _ in range(3 * YOUNG_PASS_EVERY):
            node = Node()
            refs.append(weakref.ref(node))
            del node
        yield env.timeout(1.0)
        alive_at_end.append(sum(r() is not None for r in refs))

    env = simpy.Environment()
    env.process(churn(env))
    run_clock(env)
    assert alive_at_end[0] < 3 * YOUNG_PASS_EVERY
