"""Client hosts as Ray actors: many clients per actor, results taken only when asked for.

Each actor (`ClientHost`) holds the states of the clients assigned to it and runs their tasks
one at a time, with the CPUs (or GPU share) one client needs. Dispatch never waits: `submit`
sends the task and returns; `result()` blocks only when the simulated clock says the task has
finished, so tasks that overlap in simulated time compute in parallel on the actors.

Every task runs on its client's home actor, except data-only tasks (local training, which reads
nothing but the client's train data): those go to the actor with the least outstanding work, so
a round's clients spread evenly whatever their ids. The train data is in the object store once
and every actor maps it, so any actor can serve any client's data-only task.

Shared arguments (global weights broadcast to a round's clients) go into the object store once
per object, not once per client. CPU tensors travel as their raw bytes (a NumPy view, which Ray
moves out of band) instead of torch's pickling, which writes every storage through `torch.save`:
measured at about 4 ms per 0.9 MB client update on two actors, against 1.7 ms as bytes.

Faults: an actor that dies is restarted by Ray with an empty memory. The backend keeps, per
actor, the log of state-changing tasks that completed, and replays it on the new incarnation
to rebuild every client it hosts. An actor runs its tasks one at a time in the order sent, so
the first unfinished one was running when it died: that task is lost (`HostLost` if droppable,
else run again); tasks queued behind it never started and are simply sent again. Tasks carry
the incarnation they were meant for, so a task that reaches a restarted actor before its
replay is refused, not run on an empty state.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import ActorUnavailableError, RayActorError

from nmoe_sim.config import RuntimeConfig, ScenarioError
from nmoe_sim.interrupt import reclaim_signals
from nmoe_sim.learning.access import Access, access_of
from nmoe_sim.learning.client import ClientState
from nmoe_sim.runtime.backend import HostLost
from nmoe_sim.runtime.hosting import ClientFactory, resolve_device

# Planning figure for one actor: importing torch (CUDA build) alone is about 0.53 GB of RSS
# here, and an actor training its clients was seen at 0.94-0.98 GB.
ACTOR_MEMORY_BYTES = 2**30
MAX_RESTARTS = 3
RESTART_WAIT_S = 120.0
SHARED_ARGS_KEPT = 8  # a round's broadcast, and a few features batches in flight


class StaleHost(RuntimeError):
    """A task reached an actor incarnation other than the one it was sent to."""


class ClientHost:
    """The actor: states of its clients, and a way to run a task against one of them."""

    def __init__(self, threads: int) -> None:
        torch.set_num_threads(threads)
        send_tensors_as_bytes()
        self.incarnation = uuid.uuid4().hex
        self.home: list[int] = []
        self.states: dict[int, ClientState] = {}

    def host(self, incarnation: str, factory: list[ray.ObjectRef], client_ids: list[int]) -> None:
        """Take this actor's clients and the recipe of their states. A method, not the
        constructor, so a restarted actor is rebuilt like any other state (see
        `RayBackend._recover`)."""
        if incarnation != self.incarnation:
            raise StaleHost(f"sent to incarnation {incarnation}, reached {self.incarnation}")
        self.build: ClientFactory = ray.get(factory[0])  # wrapped: fetched here, zero-copy
        # States are built when a client first works (idle clients hold nothing), and kept
        # once a task writes to them.
        self.home = client_ids
        self.states = {}

    def ready(self) -> str:
        return self.incarnation

    def run(
        self, incarnation: str, cid: int, fn: Callable[..., Any], *args: Any
    ) -> tuple[Any, float]:
        if incarnation != self.incarnation:
            raise StaleHost(f"sent to incarnation {incarnation}, reached {self.incarnation}")
        start = time.perf_counter()
        state = self.states.get(cid)
        if state is None:
            # A data-only task may come for a client hosted elsewhere: its data is a view away.
            state = self.build(cid)
            if access_of(fn) is not Access.DATA:
                self.states[cid] = state
        value = fn(state, *args)
        return value, time.perf_counter() - start

    def placement(self) -> dict[str, Any]:
        """Where this actor landed and what it holds (for tests and diagnostics)."""
        ctx = ray.get_runtime_context()
        return {
            "node_id": ctx.get_node_id(),
            "pid": os.getpid(),
            "resources": ctx.get_assigned_resources(),
            "gpu_ids": ray.get_gpu_ids(),
            "torch_threads": torch.get_num_threads(),
            "clients": sorted(self.home),
            "devices": [resolve_device(self.build.device)],
        }


@dataclass(frozen=True)
class _Sent:
    ref: ray.ObjectRef
    slot: int
    load: int  # train samples of its client: the balancing weight


@dataclass
class _Done:
    """A state-changing task in an actor's replay log; `ref` until its outcome is known."""

    cid: int
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    ref: ray.ObjectRef | None


class RayBackend:
    """Starting is split in two so that Ray and the actors boot while the caller loads data:
    the constructor connects and starts the actors; `host(factory)` gives them their clients."""

    def __init__(self, client_ids: Iterable[int], runtime: RuntimeConfig) -> None:
        client_ids = list(client_ids)
        # `ClientHost` actor handles. Ray's annotations type a method reached through a handle
        # as Never unless declared with `@ray.method`, so the handles are used untyped here.
        self.actors: list[Any] = []
        self._owns_ray = connect(runtime)
        try:
            send_tensors_as_bytes()
            count = actor_count(runtime, len(client_ids), ray.cluster_resources())
            host = ray.remote(ClientHost).options(
                num_cpus=runtime.cpus_per_client,
                num_gpus=runtime.gpus_per_client,
                max_restarts=MAX_RESTARTS,
                max_task_retries=0,
            )
            threads = max(1, int(runtime.cpus_per_client))
            self.actors = [host.remote(threads) for _ in range(count)]
        except BaseException:
            self.close()
            raise
        self.slot_of = {cid: i % count for i, cid in enumerate(client_ids)}
        self._samples: dict[int, int] = {}
        self._replay_log: list[list[_Done]] = [[] for _ in self.actors]
        # Per actor, the tasks sent and not yet collected, in the order sent, and their load.
        self._unsettled: list[dict[str, ray.ObjectRef]] = [{} for _ in self.actors]
        self._load = [0] * count
        self._lost: set[str] = set()  # tasks that were running when their actor died
        self._shared: OrderedDict[int, tuple[Any, ray.ObjectRef]] = OrderedDict()

    def host(self, factory: ClientFactory) -> None:
        """Put the data in the object store once (the actors share it without copies) and
        build every client's state on its home actor; waits until all actors are up."""
        try:
            self._factory_ref = ray.put(factory)
            self._incarnation: list[str] = ray.get([a.ready.remote() for a in self.actors])
            ray.get([self._host_clients(s) for s in range(len(self.actors))])
        except BaseException:
            self.close()
            raise
        self._samples = {c: int(factory.bounds[c + 1] - factory.bounds[c]) for c in self.slot_of}

    # The Backend interface ------------------------------------------------------------------

    def submit(
        self, client_id: int, fn: Callable[..., Any], *args: Any, droppable: bool = False
    ) -> RayTask:
        shared = tuple(self._share(a) for a in args)
        return RayTask(self, client_id, fn, shared, droppable)

    def close(self) -> None:
        for actor in getattr(self, "actors", []):
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    # Inside ---------------------------------------------------------------------------------

    def describe(self) -> str:
        clients = len(self.slot_of)
        where = ray.get_runtime_context().gcs_address
        # What each actor holds and which device `runtime.device` resolved to inside it (an
        # actor sees only the GPUs it holds, so `auto` can differ from the driver's).
        places = self.placements()
        held = places[0]["resources"] if places else {}
        share = ", ".join(f"{held[r]:g} {r}" for r in ("CPU", "GPU") if held.get(r))
        devices = "/".join(sorted({d for p in places for d in p["devices"]}))
        gpus = sorted({str(g) for p in places for g in p["gpu_ids"]})
        on_gpus = f" on GPU {', '.join(gpus)}" if gpus else ""
        return (
            f"ray: {clients} clients on {len(self.actors)} actors "
            f"(up to {-(-clients // max(1, len(self.actors)))} per actor; each {share}; "
            f"device {devices}{on_gpus}), cluster {where}"
        )

    def placements(self) -> list[dict[str, Any]]:
        return ray.get([a.placement.remote() for a in self.actors])

    def _send(self, cid: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> _Sent:
        """A task goes to its client's home actor, except a data-only one, which goes to the
        actor with the least outstanding work (in train samples): rounds balance themselves."""
        access = access_of(fn)
        if access is Access.DATA:
            slot = min(range(len(self.actors)), key=lambda s: (self._load[s], s))
        else:
            slot = self.slot_of[cid]
        ref = self.actors[slot].run.remote(self._incarnation[slot], cid, fn, *args)
        sent = _Sent(ref, slot, self._samples.get(cid, 1))
        self._unsettled[slot][ref.hex()] = ref
        self._load[slot] += sent.load
        if access is Access.WRITE:
            self._replay_log[slot].append(_Done(cid, fn, args, ref))
        return sent

    def _host_clients(self, slot: int) -> ray.ObjectRef:
        clients = [c for c, s in self.slot_of.items() if s == slot]
        return self.actors[slot].host.remote(self._incarnation[slot], [self._factory_ref], clients)

    def _settled(self, sent: _Sent) -> None:
        """The task's result was collected (or it was given up): it no longer loads its actor."""
        if self._unsettled[sent.slot].pop(sent.ref.hex(), None) is not None:
            self._load[sent.slot] -= sent.load

    def _was_running(self, ref: ray.ObjectRef) -> bool:
        return ref.hex() in self._lost

    def _share(self, arg: Any) -> Any:
        """Weights and tensors go to the object store once per object (tasks get the value)."""
        if not isinstance(arg, dict | torch.Tensor | np.ndarray):
            return arg
        key = id(arg)
        if key in self._shared:
            self._shared.move_to_end(key)
            return self._shared[key][1]
        # Holding the object keeps its id from being reused while it is cached.
        self._shared[key] = (arg, ray.put(arg))
        if len(self._shared) > SHARED_ARGS_KEPT:
            self._shared.popitem(last=False)
        return self._shared[key][1]

    def _recover(self, slot: int) -> None:
        """Wait for the actor's restart; if it is a new incarnation, find the task that was
        running when the old one died and rebuild the actor's clients."""
        incarnation = self._wait_restarted(slot)
        if incarnation == self._incarnation[slot]:
            return  # already rebuilt for this incarnation
        victim_found = False
        for key, ref in list(self._unsettled[slot].items()):
            try:
                ray.get(ref)
            except RayActorError:
                if not victim_found:
                    self._lost.add(key)
                    victim_found = True
            except StaleHost:
                pass
            else:
                continue  # finished before the death: its handle collects it
            self._unsettled[slot].pop(key)
        kept = []
        for done in self._replay_log[slot]:
            if done.ref is not None:
                try:
                    ray.get(done.ref)
                except (RayActorError, StaleHost):
                    continue  # lost with the old incarnation, or refused by the new one
                done.ref = None
            kept.append(done)
        self._replay_log[slot] = kept
        self._incarnation[slot] = incarnation
        actor = self.actors[slot]
        ray.get(
            [
                self._host_clients(slot),
                *(actor.run.remote(incarnation, d.cid, d.fn, *d.args) for d in kept),
            ]
        )

    def _wait_restarted(self, slot: int) -> str:
        """The incarnation now serving `slot` (calls wait while Ray restarts an actor)."""
        deadline = time.monotonic() + RESTART_WAIT_S
        while True:
            try:
                return ray.get(self.actors[slot].ready.remote())
            except ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
            except RayActorError as exc:
                clients = sorted(c for c, s in self.slot_of.items() if s == slot)
                raise RuntimeError(
                    f"the Ray actor hosting clients {clients} died and was not restarted "
                    f"(at most {MAX_RESTARTS} restarts): {exc}"
                ) from None


class RayTask:
    """A task sent to an actor; `result()` waits for it (and handles a lost host)."""

    def __init__(
        self,
        backend: RayBackend,
        cid: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        droppable: bool,
    ) -> None:
        self._backend, self._cid, self._fn, self._args = backend, cid, fn, args
        self._droppable = droppable
        self._sent = backend._send(cid, fn, args)
        self._value: Any = None
        self._done = False
        self.wall_time_s = float("nan")

    def result(self) -> Any:
        backend = self._backend
        while not self._done:
            sent = self._sent
            try:
                self._value, self.wall_time_s = ray.get(sent.ref)
                self._done = True
            except StaleHost:
                backend._recover(sent.slot)  # it never ran: send it again
            except RayActorError as exc:
                backend._recover(sent.slot)
                if self._droppable and backend._was_running(sent.ref):
                    backend._settled(sent)
                    raise HostLost(self._cid, type(exc).__name__) from None
            backend._settled(sent)
            if not self._done:
                self._sent = backend._send(self._cid, self._fn, self._args)
        return self._value


def connect(runtime: RuntimeConfig) -> bool:
    """Join `runtime.ray_address`, or start a local Ray; True when we started it (and so shut it
    down). A Ray already initialised in this process (tests, notebooks) is used as it is."""
    if ray.is_initialized():
        return False
    address = runtime.ray_address
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    common: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ScenarioError(
                f"runtime.ray_address: cannot join the Ray cluster at {address!r} ({exc}); "
                "check `ray status` on its head node, or drop the address to run locally"
            ) from None
    else:
        if runtime.dashboard and ray._private.utils.get_dashboard_dependency_error() is not None:
            raise ScenarioError(
                "runtime.dashboard: the Ray dashboard needs Ray's optional packages; "
                "install them with `.venv/bin/pip install 'ray[default]'` or drop the key"
            )
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=runtime.dashboard, **common)
    reclaim_signals()
    return True


def send_tensors_as_bytes() -> None:
    """Make this process's Ray serialise plain CPU tensors as their bytes (see the module doc).
    The receiver copies them out of the object store, so it owns a writable tensor as before."""
    ray.util.register_serializer(
        torch.Tensor, serializer=_tensor_to_wire, deserializer=_tensor_from_wire
    )


def _tensor_to_wire(tensor: torch.Tensor) -> tuple[Any, ...]:
    plain = (
        tensor.device.type == "cpu"
        and tensor.layout == torch.strided
        and not tensor.requires_grad
        and not tensor.is_quantized
        and not tensor.is_conj()
        and not tensor.is_neg()
    )
    if not plain:  # GPU, sparse, autograd, ...: torch's own pickling keeps all of it
        return ("pickled", pickle.dumps(tensor))
    flat = tensor.detach().contiguous().reshape(-1)
    return ("bytes", flat.view(torch.uint8).numpy(), tensor.dtype, tuple(tensor.shape))


def _tensor_from_wire(wire: tuple[Any, ...]) -> torch.Tensor:
    if wire[0] == "pickled":
        return pickle.loads(wire[1])
    _, data, dtype, shape = wire
    # A copy: `data` is a read-only view of the object store.
    tensor = torch.empty(shape, dtype=dtype)
    if tensor.numel():
        tensor.reshape(-1).view(torch.uint8).numpy()[:] = data
    return tensor


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nobody listens on (Ray itself retries for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ScenarioError(
            f"runtime.ray_address: nothing answers at {address!r} ({exc}); start the cluster "
            "(`ray start --head`) and pass the address it prints, or drop the address to run "
            "locally"
        ) from None


def actor_count(runtime: RuntimeConfig, clients: int, resources: dict[str, float]) -> int:
    """How many actors host the clients: `max_actors`, or as many as the cluster's CPUs, GPUs
    and memory fit (never more than there are clients)."""
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    fits = [math.floor(cpus / runtime.cpus_per_client + 1e-9)]
    if runtime.gpus_per_client > 0:
        fits.append(math.floor(gpus / runtime.gpus_per_client + 1e-9))
    if "memory" in resources:
        fits.append(max(1, int(resources["memory"] // ACTOR_MEMORY_BYTES)))
    fit = min(fits)
    have = f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs"
    if fit < 1:
        raise ScenarioError(
            f"runtime: one client actor needs {runtime.cpus_per_client:g} CPUs and "
            f"{runtime.gpus_per_client:g} GPUs but {have}; lower runtime.cpus_per_client / "
            "runtime.gpus_per_client"
        )
    if runtime.max_actors is not None and runtime.max_actors > fit:
        raise ScenarioError(
            f"runtime.max_actors: {runtime.max_actors} actors do not fit ({have}; each takes "
            f"{runtime.cpus_per_client:g} CPUs, {runtime.gpus_per_client:g} GPUs); "
            f"use at most {fit}"
        )
    return min(clients, runtime.max_actors or fit)
