"""The execution-backend interface and its in-process implementation.

A backend hosts client states and runs tasks `fn(state, *args)` against them. It says *where*
work runs; drivers say *when*; the task functions say *what*. A Ray backend implements the same
two methods with actors holding the states.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from nmoe_sim.learning.client import ClientState

R = TypeVar("R")


class TaskHandle(Protocol[R]):
    wall_time_s: float

    def result(self) -> R: ...


class Backend(Protocol):
    def submit(self, client_id: int, fn: Callable[..., R], *args: Any) -> TaskHandle[R]: ...

    def close(self) -> None: ...


class CompletedTask:
    """A task that already ran in this process (eagerly), with its host wall time."""

    def __init__(self, value: Any, wall_time_s: float) -> None:
        self._value = value
        self.wall_time_s = wall_time_s

    @classmethod
    def run(cls, fn: Callable[..., Any], *args: Any) -> CompletedTask:
        start = time.perf_counter()
        value = fn(*args)
        return cls(value, time.perf_counter() - start)

    def result(self) -> Any:
        return self._value


class InProcessBackend:
    """Runs every task at once in this process: simplest to debug, and the reference for parity."""

    def __init__(self, factory: Callable[[int], ClientState], client_ids: Iterable[int]) -> None:
        self.states = {cid: factory(cid) for cid in client_ids}

    def submit(self, client_id: int, fn: Callable[..., R], *args: Any) -> CompletedTask:
        return CompletedTask.run(fn, self.states[client_id], *args)

    def close(self) -> None:
        self.states.clear()
