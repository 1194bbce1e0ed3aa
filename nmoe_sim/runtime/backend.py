"""The execution-backend interface and its in-process implementation.

A backend hosts client states and runs tasks `fn(state, *args)` against them. It says *where*
work runs; drivers say *when*; the task functions say *what*. `RayBackend` (ray_backend.py)
implements the same interface with actors holding the states.

Arguments handed to `submit` are treated as immutable from then on: a backend may share one
copy of an argument between all the tasks that receive the same object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from nmoe_sim.learning.access import Access, access_of
from nmoe_sim.learning.client import ClientState
from nmoe_sim.runtime.hosting import ClientFactory

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class HostLost(RuntimeError):
    """The process hosting a client died while running a droppable task; the task is lost.

    The backend has already restored the client's state on a restarted host: the caller only
    decides what the loss means (a federated update is recorded as dropped).
    """

    def __init__(self, client_id: int, detail: str) -> None:
        super().__init__(f"client {client_id}: host lost ({detail})")
        self.client_id = client_id


class TaskHandle(Protocol[R_co]):
    def result(self) -> R_co: ...

    @property
    def wall_time_s(self) -> float:
        """Host seconds the task computed for; valid once `result()` returned."""
        ...


class Backend(Protocol):
    """Created with the client ids (hosts start booting), then `host(factory)` builds every
    client's state from the factory; then tasks run with `submit`."""

    def host(self, factory: ClientFactory) -> None: ...

    def submit(
        self, client_id: int, fn: Callable[..., R], *args: Any, droppable: bool = False
    ) -> TaskHandle[R]:
        """Start `fn(state_of(client_id), *args)`. If its host dies, a `droppable` task raises
        `HostLost` from `result()`; any other task is run again on the restarted host."""
        ...

    def describe(self) -> str:
        """One line for the console: where the clients are hosted."""
        ...

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
    """Runs every task at once in this process: simplest to debug, and the reference for parity.

    A client's state is built when it first works, and kept only once a task writes to it: a
    data-only task (local training) gets a state made for it, a view of the shared data, so
    the many clients of a cross-device run that only ever train hold nothing between tasks."""

    def __init__(self, client_ids: Iterable[int]) -> None:
        self.client_ids = list(client_ids)
        self.states: dict[int, ClientState] = {}
        self._build: Callable[[int], ClientState] | None = None

    def host(self, factory: Callable[[int], ClientState]) -> None:
        self._build = factory
        self.states = {}

    def state_of(self, client_id: int, fn: Callable[..., Any]) -> ClientState:
        state = self.states.get(client_id)
        if state is None:
            if self._build is None:
                raise RuntimeError("InProcessBackend.submit before host()")
            state = self._build(client_id)
            if access_of(fn) is not Access.DATA:
                self.states[client_id] = state
        return state

    def submit(
        self, client_id: int, fn: Callable[..., R], *args: Any, droppable: bool = False
    ) -> CompletedTask:
        return CompletedTask.run(fn, self.state_of(client_id, fn), *args)

    def describe(self) -> str:
        return f"in-process: {len(self.client_ids)} clients in this process"

    def close(self) -> None:
        self.states.clear()
