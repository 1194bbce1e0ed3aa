"""How the clock drives a backend: work is sent when the simulated task starts and collected
when it ends (never earlier), so tasks that overlap in simulated time run at once on real
hosts; each task's simulated span and host seconds are recorded; a lost host drops the task."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy

from nmoe_sim.network.devices import SERVER, DeviceProfile, TaskDropped, client_node
from nmoe_sim.runtime.backend import HostLost
from nmoe_sim.telemetry.records import Recorder
from nmoe_sim.world import World


class Instant:
    def carry(self, env: simpy.Environment, src: str, dst: str, size: int) -> Generator:
        yield env.timeout(0)
        return (src, dst)


class Handle:
    def __init__(self, backend: LoggingBackend, cid: int, value: Any, lost: bool) -> None:
        self.backend, self.cid, self.value, self.lost = backend, cid, value, lost
        self.wall_time_s = 0.25 + cid

    def result(self) -> Any:
        self.backend.events.append(("result", self.cid, self.backend.env.now))
        if self.lost:
            raise HostLost(self.cid, "killed")
        return self.value


class LoggingBackend:
    """Records when the clock sends and collects each task; `lose` clients' droppable tasks
    come back as a lost host."""

    def __init__(self, lose: set[int] = frozenset()) -> None:
        self.events: list[tuple[str, int, float]] = []
        self.env: simpy.Environment
        self.lose = lose

    def submit(
        self, client_id: int, fn: Callable[..., Any], *args: Any, droppable: bool = False
    ) -> Handle:
        self.events.append(("submit", client_id, self.env.now))
        return Handle(self, client_id, fn(client_id, *args), droppable and client_id in self.lose)

    def close(self) -> None:
        pass


def _world(backend: LoggingBackend, speeds: dict[int, float]) -> World:
    profile = DeviceProfile({client_node(c): s for c, s in speeds.items()} | {SERVER: 1.0}, 0.0)
    recorder = Recorder()
    world = World.create(
        start_s=0.0,
        network=Instant(),
        devices=profile,
        backend=backend,
        log=recorder.method("m"),
        recorder=recorder,
        seed=0,
    )
    backend.env = world.env
    return world


def double(cid: int, x: int) -> int:
    return 2 * x


def test_overlapping_tasks_are_all_sent_before_any_is_collected() -> None:
    backend = LoggingBackend()
    world = _world(backend, {0: 1.0, 1: 1.0, 2: 1.0})
    flops = {0: 3.0, 1: 1.0, 2: 2.0}  # seconds at 1 FLOP/s

    def all_clients() -> Generator:
        procs = [world.env.process(world.client_work(c, flops[c], double, c)) for c in flops]
        yield world.env.all_of(procs)
        return [p.value for p in procs]

    assert world.run(all_clients()) == [0, 2, 4]
    assert backend.events == [
        ("submit", 0, 0.0),
        ("submit", 1, 0.0),
        ("submit", 2, 0.0),
        ("result", 1, 1.0),
        ("result", 2, 2.0),
        ("result", 0, 3.0),
    ]
    spans = [(t.node, t.task, t.t_start_s, t.t_end_s, t.host_wall_s) for t in world.log.tasks]
    assert spans == [
        ("c1", "double", 0.0, 1.0, 1.25),
        ("c2", "double", 0.0, 2.0, 2.25),
        ("c0", "double", 0.0, 3.0, 0.25),
    ]


def test_a_busy_device_sends_its_next_task_only_when_it_starts() -> None:
    backend = LoggingBackend()
    world = _world(backend, {0: 2.0})

    def two_tasks() -> Generator:
        first = world.env.process(world.client_work(0, 4.0, double, 1))
        second = world.env.process(world.client_work(0, 2.0, double, 2))
        yield first & second

    world.run(two_tasks())
    assert backend.events == [
        ("submit", 0, 0.0),
        ("result", 0, 2.0),
        ("submit", 0, 2.0),
        ("result", 0, 3.0),
    ]


def test_lost_host_drops_a_federated_task_and_records_it() -> None:
    backend = LoggingBackend(lose={1})
    world = _world(backend, {0: 1.0, 1: 1.0})

    def task(cid: int) -> Generator:
        return (yield from world.client_work(cid, 1.0, double, cid, may_drop=True))

    assert world.run(task(0)) == 0
    with pytest.raises(TaskDropped) as info:
        world.run(task(1))
    assert (info.value.node, info.value.reason) == ("c1", "host_lost")
    statuses = [(t.node, t.status) for t in world.log.tasks]
    assert statuses == [("c0", "done"), ("c1", "host_lost")]
    assert world.log.tasks[1].host_wall_s != world.log.tasks[1].host_wall_s  # NaN: no answer


def test_in_process_states_are_built_on_first_work_and_kept_only_when_written() -> None:
    """100,000 clients cost nothing until they work: a data-only task gets a state made for
    it and dropped after; a task that writes keeps its client's state for the next one."""
    from nmoe_sim.learning.access import Access, task
    from nmoe_sim.runtime.backend import InProcessBackend

    built: list[int] = []

    class State:
        def __init__(self, cid: int) -> None:
            built.append(cid)
            self.notes: list[str] = []

    @task(Access.DATA)
    def train(state: State) -> int:
        return len(state.notes)

    @task(Access.WRITE)
    def note(state: State, text: str) -> int:
        state.notes.append(text)
        return len(state.notes)

    backend = InProcessBackend(range(100_000))
    backend.host(State)
    assert built == [] and backend.states == {}
    assert [backend.submit(c, train).result() for c in (5, 5, 99_999)] == [0, 0, 0]
    assert built == [5, 5, 99_999] and backend.states == {}
    assert [backend.submit(7, note, t).result() for t in ("a", "b")] == [1, 2]
    assert backend.submit(7, train).result() == 2  # a kept state serves every later task
    assert built == [5, 5, 99_999, 7] and list(backend.states) == [7]
