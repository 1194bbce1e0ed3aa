"""A simulated world: one clock, one channel, the devices and the backend a method runs in.

Each method (and each NMoE gating branch) runs in its own world so that methods never contend
for each other's links; a branch starts its clock where its shared extractor pipeline ended.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy

from nmoe_sim.network.channel import Channel, NetworkModel
from nmoe_sim.network.devices import SERVER, DeviceProfile, Devices, client_node
from nmoe_sim.runtime.backend import Backend, CompletedTask
from nmoe_sim.seeds import numpy_rng
from nmoe_sim.telemetry.progress import RunProgress
from nmoe_sim.telemetry.records import MethodLog, Recorder


@dataclass
class World:
    env: simpy.Environment
    channel: Channel
    devices: Devices
    backend: Backend
    log: MethodLog
    recorder: Recorder
    progress: RunProgress

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
        progress: RunProgress,
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
            progress=progress,
        )

    def client_work(
        self,
        client_id: int,
        flops: float,
        fn: Callable[..., Any],
        *args: Any,
        may_drop: bool = False,
    ) -> Generator:
        """Run `fn(state, *args)` on a client's device for the modelled time; returns its result.
        With `may_drop` (federated tasks) the task can be lost: `TaskDropped` is raised."""
        return self.devices.work(
            client_node(client_id),
            flops,
            lambda: self.backend.submit(client_id, fn, *args),
            may_drop=may_drop,
        )

    def server_work(self, flops: float, fn: Callable[..., Any], *args: Any) -> Generator:
        return self.devices.work(SERVER, flops, lambda: CompletedTask.run(fn, *args))

    def run(self, process: Generator) -> Any:
        """Run one driver process to completion on this world's clock; returns its value."""
        proc = self.env.process(process)
        self.env.run(until=proc)
        return proc.value

    def metric(
        self, stage: str, round: int, accuracy: float | None, loss: float | None = None
    ) -> None:
        self.recorder.metric(self.log, stage, round, self.env.now, accuracy, loss)
