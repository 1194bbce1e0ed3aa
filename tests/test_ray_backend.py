"""The Ray backend against the in-process reference: same numbers, packed clients, resource
requests, and a host killed mid-task.

One local Ray instance (2 logical CPUs, 2 logical GPUs, so GPU-share placement is testable
without a GPU) serves the whole module; each run starts and kills its own actors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import ray
import torch

from nmoe_sim.config import RuntimeConfig, Scenario, ScenarioError, load_scenario
from nmoe_sim.engine import build_population, model_spec, run_scenario
from nmoe_sim.learning import client as tasks
from nmoe_sim.runtime.hosting import ClientFactory
from nmoe_sim.runtime.ray_backend import (
    ACTOR_MEMORY_BYTES,
    RayBackend,
    _tensor_to_wire,
    actor_count,
    send_tensors_as_bytes,
)
from tests.test_engine import tiny_scenario
from tests.test_scenarios_real import ROOT, needs_fmnist

GIB = 2**30


@pytest.fixture(scope="module")
def local_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    # Crash helpers defined in this module must travel by value (workers cannot import tests).
    ray.cloudpickle.register_pickle_by_value(__import__(__name__))
    yield
    ray.shutdown()


def _with_runtime(scenario: Scenario, **runtime: object) -> Scenario:
    raw = scenario.model_dump()
    raw["runtime"] = {**raw["runtime"], **runtime}
    return Scenario.model_validate(raw)


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    tables = {name: pd.read_csv(out / f"{name}.csv") for name in ("trace", "updates", "rounds")}
    tables["tasks"] = pd.read_csv(out / "tasks.csv").drop(columns="host_wall_s")
    return tables


def _assert_same_run(a: Path, b: Path) -> None:
    sa = json.loads((a / "summary.json").read_text())["methods"]
    sb = json.loads((b / "summary.json").read_text())["methods"]
    assert list(sa) == list(sb)
    for name in sa:
        for key in ("accuracy_global", "accuracy_local", "bytes_total", "sim_time_s"):
            assert sa[name][key] == pytest.approx(sb[name][key], abs=1e-9), (name, key)
        assert sa[name]["updates"] == sb[name]["updates"], name
    ta, tb = _tables(a), _tables(b)
    for name in ta:
        pd.testing.assert_frame_equal(ta[name], tb[name], obj=name)


# Tensors on the wire ---------------------------------------------------------------------------


def test_tensors_cross_the_object_store_as_bytes_and_come_back_equal_and_writable(
    local_ray: None,
) -> None:
    send_tensors_as_bytes()
    sent = {
        "float32": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
        "scalar": torch.tensor(2.5, dtype=torch.float64),
        "counter": torch.tensor(7),  # BatchNorm's num_batches_tracked
        "empty": torch.zeros(0, 3),
        "bool": torch.tensor([True, False, True]),
        "bfloat16": torch.linspace(-1, 1, 5).bfloat16(),
        "transposed": torch.arange(6.0).reshape(2, 3).t(),
    }
    for name, tensor in sent.items():
        assert _tensor_to_wire(tensor)[0] == "bytes", name
    back = ray.get(ray.put(sent))
    for name, tensor in sent.items():
        got = back[name]
        assert got.dtype == tensor.dtype and got.shape == tensor.shape, name
        assert torch.equal(got, tensor), name
    back["float32"].mul_(0)  # the receiver owns its copy, not a view of the object store
    assert back["float32"].abs().sum() == 0 and sent["float32"].abs().sum() > 0


def test_tensors_with_autograd_keep_torch_pickling(local_ray: None) -> None:
    send_tensors_as_bytes()
    leaf = torch.tensor([1.0, -2.0], requires_grad=True)
    assert _tensor_to_wire(leaf)[0] == "pickled"
    back = ray.get(ray.put(leaf))
    assert back.requires_grad and torch.equal(back.detach(), leaf.detach())


# Parity ---------------------------------------------------------------------------------------


@needs_fmnist
def test_ray_matches_inprocess_on_smoke(local_ray: None, tmp_path: Path) -> None:
    """Same seed, same thread count per task: every accuracy and every trace row agree. The
    MEC topology and stragglers make the clock's side of the comparison non-trivial."""
    base = load_scenario(
        ROOT / "scenarios" / "smoke.yaml",
        [
            "network.topology=mec",
            "stragglers.fraction=0.4",
            "runtime.torch_threads=1",
            "runtime.device=cpu",
            "output.plots=false",
        ],
    )
    run_scenario(base, tmp_path / "inprocess")
    run_scenario(_with_runtime(base, backend="ray"), tmp_path / "ray")
    _assert_same_run(tmp_path / "inprocess", tmp_path / "ray")
    tasks_csv = pd.read_csv(tmp_path / "ray" / "tasks.csv")
    assert (tasks_csv["status"] == "done").all()
    assert (tasks_csv["host_wall_s"] > 0).all()
    assert (tasks_csv["t_end_s"] >= tasks_csv["t_start_s"]).all()


def test_fifty_clients_packed_on_two_actors_match_inprocess(
    local_ray: None, tmp_path: Path
) -> None:
    scenario = _fifty_clients(
        methods=["fedavg", "nmoe/fedce/fedgate"], federation={"clients_per_round": 10}
    )
    run_scenario(scenario, tmp_path / "inprocess")
    run_scenario(_with_runtime(scenario, backend="ray", max_actors=2), tmp_path / "ray")
    _assert_same_run(tmp_path / "inprocess", tmp_path / "ray")


def _fifty_clients(**overrides: object) -> Scenario:
    return tiny_scenario(
        clients={"count": 50},
        dataset={"name": "synthetic", "train_samples": 2000, "test_samples": 400},
        partition={"scheme": "dirichlet", "alpha": 0.5, "test_samples_per_client": 20},
        **overrides,
    )


def _factory(scenario: Scenario) -> tuple[ClientFactory, list[int]]:
    population = build_population(scenario)
    x = torch.cat([population.dataset.train_x[p] for p in population.train_parts])
    y = torch.cat([population.dataset.train_y[p] for p in population.train_parts])
    sizes = [len(p) for p in population.train_parts]
    spec = model_spec(scenario, population.dataset)
    return ClientFactory.from_tensors(spec, x, y, sizes, "auto"), list(range(len(sizes)))


def test_packing_places_every_client_once(local_ray: None) -> None:
    scenario = _fifty_clients()
    factory, ids = _factory(scenario)
    backend = RayBackend(ids, RuntimeConfig(backend="ray", max_actors=2))
    backend.host(factory)
    try:
        placements = backend.placements()
        weights = _extractor_weights(scenario)
        counts = [backend.submit(c, tasks.embed, "p", weights).result() for c in ids]
    finally:
        backend.close()
    # One broadcast object, one copy in the object store, however many clients receive it.
    assert len(backend._shared) == 1
    assert [len(p["clients"]) for p in placements] == [25, 25]
    assert sorted(c for p in placements for c in p["clients"]) == ids
    assert {p["torch_threads"] for p in placements} == {1}
    assert counts == [factory(c).num_train for c in ids]


def test_data_only_tasks_balance_over_actors_with_identical_results(local_ray: None) -> None:
    """Ten clients all homed on actor 0: their training (data-only) spreads over both actors,
    and each result equals the in-process one bit for bit."""
    scenario = _fifty_clients()
    factory, ids = _factory(scenario)
    backend = RayBackend(ids, RuntimeConfig(backend="ray", max_actors=2))
    backend.host(factory)
    optim = scenario.baselines.fedavg.optim
    homed_on_0 = [c for c in ids if backend.slot_of[c] == 0][:10]
    try:
        handles = [backend.submit(c, tasks.fit_classifier, None, optim, 1, c) for c in homed_on_0]
        slots = [h._sent.slot for h in handles]
        updates = [h.result() for h in handles]
    finally:
        backend.close()
    assert sorted(set(slots)) == [0, 1]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the actors
    try:
        local = [tasks.fit_classifier(factory(c), None, optim, 1, c) for c in homed_on_0]
    finally:
        torch.set_num_threads(threads)
    for c, update, mine in zip(homed_on_0, updates, local, strict=True):
        assert update.loss == mine.loss
        for key, value in mine.weights.items():
            assert torch.equal(update.weights[key], value), (c, key)


def _extractor_weights(scenario: Scenario) -> dict[str, torch.Tensor]:
    population = build_population(scenario)
    spec = model_spec(scenario, population.dataset)
    return tasks.fresh_weights(spec.build_extractor(), seed=1)


# Resources ------------------------------------------------------------------------------------


def test_gpu_share_places_four_actors_on_two_logical_gpus(local_ray: None) -> None:
    scenario = tiny_scenario(clients={"count": 8})
    factory, ids = _factory(scenario)
    runtime = RuntimeConfig(backend="ray", cpus_per_client=0.5, gpus_per_client=0.5)
    backend = RayBackend(ids, runtime)
    backend.host(factory)
    try:
        placements = backend.placements()
        line = backend.describe()
    finally:
        backend.close()
    assert len(placements) == 4  # min(8 clients, 2 CPUs / 0.5, 2 GPUs / 0.5)
    for p in placements:
        assert p["resources"]["CPU"] == pytest.approx(0.5)
        assert p["resources"]["GPU"] == pytest.approx(0.5)
        assert len(p["gpu_ids"]) == 1
        assert p["torch_threads"] == 1
        assert len(p["clients"]) == 2
    # Two actors share each logical GPU.
    gpu_of = pd.Series([str(p["gpu_ids"][0]) for p in placements])
    assert sorted(gpu_of.value_counts().tolist()) == [2, 2]

    # `auto` resolved inside each actor, which sees only the GPU it holds: a logical GPU is a
    # CUDA device only where this machine has a real GPU of that index.
    def device_of(gpu_id: object) -> str:
        return "cuda" if int(str(gpu_id)) < torch.cuda.device_count() else "cpu"

    for p in placements:
        assert p["devices"] == [device_of(p["gpu_ids"][0])]
    devices = "/".join(sorted({device_of(g) for g in range(2)}))
    assert "8 clients on 4 actors (up to 2 per actor; each 0.5 CPU, 0.5 GPU;" in line
    assert f"device {devices} on GPU 0, 1)" in line


def test_actor_count_follows_resources() -> None:
    cpu4 = {"CPU": 4.0, "memory": 64.0 * GIB}
    assert actor_count(RuntimeConfig(backend="ray"), 100, cpu4) == 4
    assert actor_count(RuntimeConfig(backend="ray"), 3, cpu4) == 3  # never more than clients
    assert actor_count(RuntimeConfig(backend="ray", cpus_per_client=2), 100, cpu4) == 2
    gpu = {"CPU": 16.0, "GPU": 1.0, "memory": 64.0 * GIB}
    assert actor_count(RuntimeConfig(backend="ray", gpus_per_client=0.25), 100, gpu) == 4
    small_memory = {"CPU": 64.0, "memory": 3.5 * ACTOR_MEMORY_BYTES}
    assert actor_count(RuntimeConfig(backend="ray"), 100, small_memory) == 3
    assert actor_count(RuntimeConfig(backend="ray", max_actors=2), 100, cpu4) == 2


def test_actor_count_refuses_what_cannot_fit() -> None:
    with pytest.raises(ScenarioError, match=r"runtime\.max_actors: 8 actors do not fit"):
        actor_count(RuntimeConfig(backend="ray", max_actors=8), 100, {"CPU": 4.0})
    with pytest.raises(ScenarioError, match=r"lower runtime\.cpus_per_client"):
        actor_count(RuntimeConfig(backend="ray", gpus_per_client=1), 10, {"CPU": 4.0})


# Faults ---------------------------------------------------------------------------------------


class CrashOnce:
    """A task that kills its host process the first time it runs for `client` (a real death,
    not an exception), then behaves as `inner`."""

    def __init__(self, inner: object, client: int, marker: Path) -> None:
        self.inner, self.client, self.marker = inner, client, marker
        self.__name__ = getattr(inner, "__name__", "task")

    def __call__(self, state: tasks.ClientState, *args: object) -> object:
        if state.client_id == self.client and not self.marker.exists():
            self.marker.touch()
            os._exit(1)
        return self.inner(state, *args)


def test_actor_killed_mid_gate_round_drops_the_update_and_the_run_finishes(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Client 1's host dies inside its first FedGate task. The update is recorded as dropped
    (updates.csv, tasks.csv, summary); the clients it hosted are rebuilt by replay, so the
    method evaluated after it (own_expert, which needs every expert) equals a run without the
    fault exactly."""
    scenario = tiny_scenario(methods=["nmoe/fedsc/fedgate", "nmoe/fedsc/own_expert"])
    ray_scenario = _with_runtime(scenario, backend="ray", max_actors=2)
    run_scenario(ray_scenario, tmp_path / "clean")
    marker = tmp_path / "crashed"
    monkeypatch.setattr(tasks, "fit_gate", CrashOnce(tasks.fit_gate, 1, marker))
    summary = run_scenario(ray_scenario, tmp_path / "faulty")

    assert marker.exists()
    fedgate = summary["methods"]["nmoe/fedsc/fedgate"]
    assert fedgate["updates"]["dropped"] == {"host_lost": 1}
    updates = pd.read_csv(tmp_path / "faulty" / "updates.csv")
    lost = updates[updates["reason"] == "host_lost"]
    assert lost[["client", "stage", "round", "status"]].values.tolist() == [
        [1, "gate", 0, "dropped"]
    ]
    task_rows = pd.read_csv(tmp_path / "faulty" / "tasks.csv")
    lost_task = task_rows[task_rows["status"] == "host_lost"]
    assert lost_task[["method", "node", "task"]].values.tolist() == [
        ["nmoe/fedsc/fedgate", "c1", "fit_gate"]
    ]
    assert lost_task["host_wall_s"].isna().all()

    clean = json.loads((tmp_path / "clean" / "summary.json").read_text())["methods"]
    after = summary["methods"]["nmoe/fedsc/own_expert"]
    assert after["accuracy_global"] == clean["nmoe/fedsc/own_expert"]["accuracy_global"]
    assert after["accuracy_local"] == clean["nmoe/fedsc/own_expert"]["accuracy_local"]
    assert fedgate["updates"]["applied"] == clean["nmoe/fedsc/fedgate"]["updates"]["applied"] - 1
