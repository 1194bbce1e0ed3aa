"""A simulated world: one clock, one channel, the devices and the backend a method runs in.

Each method (and each NMoE gating branch) runs in its own world so that methods never contend
for each other's links; a branch starts its clock where its shared extractor pipeline ended.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy

from nmoe_sim.clock import run_clock
from nmoe_sim.network.channel import Channel, NetworkModel
from nmoe_sim.network.devices import SERVER, DeviceProfile, Devices, TaskDropped, client_node
from nmoe_sim.runtime.backend import Backend, CompletedTask, HostLost, TaskHandle
from nmoe_sim.seeds import numpy_rng
from nmoe_sim.telemetry.records import MethodLog, Recorder
from nmoe_sim.telemetry.schema import TaskRecord


@dataclass
class World:
    env: simpy.Environment
    channel: Channel
    devices: Devices
    backend: Backend
    log: MethodLog
    recorder: Recorder

    @classmethod
    def create(
        cls,
        *,
        start_s: float,
        network: NetworkModel,
        devices: DeviceProfile,
        backend: Backend,
        log: MethodLog,
        recorder: Recorder,
        seed: int,
    ) -> World:
        env = simpy.Environment(initial_time=start_s)
        return cls(
            env=env,
            channel=Channel(env, network, log),
            devices=Devices(env, devices, numpy_rng(seed, "dropout", log.name)),
            backend=backend,
            log=log,
            recorder=recorder,
        )

    def client_work(
        self,
        client_id: int,
        flops: float,
        fn: Callable[..., Any],
        *args: Any,
        may_drop: bool = False,
    ) -> Generator[Any, Any, Any]:
        """Run `fn(state, *args)` on a client's device for the modelled time; returns its result.
        With `may_drop` (federated tasks) the task can be lost: `TaskDropped` is raised."""
        node = client_node(client_id)
        task = _TaskRun(node)

        def dispatch() -> _TaskRun:
            task.started(
                self.env.now, self.backend.submit(client_id, fn, *args, droppable=may_drop)
            )
            return task

        try:
            result = yield from self.devices.work(node, flops, dispatch, may_drop=may_drop)
        except TaskDropped as exc:
            self._record_task(task, fn, exc.reason)
            raise
        self._record_task(task, fn, "done")
        return result

    def server_work(
        self, flops: float, fn: Callable[..., Any], *args: Any
    ) -> Generator[Any, Any, Any]:
        task = _TaskRun(SERVER)

        def dispatch() -> _TaskRun:
            task.started(self.env.now, CompletedTask.run(fn, *args))
            return task

        result = yield from self.devices.work(SERVER, flops, dispatch)
        self._record_task(task, fn, "done")
        return result

    def _record_task(self, task: _TaskRun, fn: Callable[..., Any], status: str) -> None:
        self.log.record_task(
            TaskRecord(
                node=task.node,
                task=getattr(fn, "__name__", type(fn).__name__),
                t_start_s=task.t_start_s,
                t_end_s=self.env.now,
                host_wall_s=task.host_wall_s,
                status=status,
            )
        )

    def run(self, process: Generator[Any, Any, Any]) -> Any:
        """Run one driver process to completion on this world's clock; returns its value."""
        proc = self.env.process(process)
        run_clock(self.env, until=proc)
        return proc.value

    def metric(
        self, stage: str, round: int, accuracy: float | None, loss: float | None = None
    ) -> None:
        self.recorder.metric(self.log, stage, round, self.env.now, accuracy, loss)


class _TaskRun:
    """A dispatched task as the device model sees it: when it started, and its handle, whose
    loss of host becomes a dropped task."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.t_start_s = float("nan")
        self.host_wall_s = float("nan")
        self._handle: TaskHandle[Any] | None = None

    def started(self, now: float, handle: TaskHandle[Any]) -> None:
        self.t_start_s = now
        self._handle = handle

    def result(self) -> Any:
        assert self._handle is not None, "result() before dispatch"
        try:
            value = self._handle.result()
        except HostLost:
            raise TaskDropped(self.node, "host_lost") from None
        self.host_wall_s = self._handle.wall_time_s
        return value
