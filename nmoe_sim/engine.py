"""Wires a scenario into data, clients, backend, its methods' pipelines and the run directory."""

from __future__ import annotations

import itertools
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from nmoe_sim.checkpoint import open_checkpoint
from nmoe_sim.config import Scenario, ScenarioError
from nmoe_sim.data import class_counts, client_test_indices, load_dataset, partition_indices
from nmoe_sim.data.sources import ImageDataset
from nmoe_sim.interrupt import RunInterrupted, signal_number
from nmoe_sim.learning.evaluate import Evaluator
from nmoe_sim.methods import BASELINES, EXTRACTORS, parse_nmoe
from nmoe_sim.models.spec import ModelSpec
from nmoe_sim.network.build import NetworkSetup, build_network
from nmoe_sim.network.devices import DeviceProfile
from nmoe_sim.network.events import handover_events, link_states, positions
from nmoe_sim.pipelines.baselines import run_centralized, run_fedavg, run_local
from nmoe_sim.pipelines.context import MethodResult, RunContext
from nmoe_sim.pipelines.finished import Finished
from nmoe_sim.runtime import make_backend
from nmoe_sim.runtime.backend import Backend
from nmoe_sim.runtime.hosting import ClientFactory, resolve_device
from nmoe_sim.seeds import numpy_rng
from nmoe_sim.telemetry.output import check_output_dir, default_run_dir, named_dir
from nmoe_sim.telemetry.progress import RunProgress
from nmoe_sim.telemetry.records import Recorder
from nmoe_sim.telemetry.schema import LinkStateRecord, PositionRecord
from nmoe_sim.telemetry.summary import DatasetInfo, MethodSummary, PerClient, RunSummary
from nmoe_sim.telemetry.writer import write_run

BASELINE_RUNNERS = {"local": run_local, "fedavg": run_fedavg, "centralized": run_centralized}


@dataclass(frozen=True)
class Population:
    """The dataset split into clients: train indices and own test splits per client."""

    dataset: ImageDataset
    train_parts: list[np.ndarray]
    test_parts: list[np.ndarray]

    def in_client_order(self) -> Population:
        """The same split with the train set reordered client after client, so every client's
        data is one contiguous slice (shared without copies by its state and the backend)."""
        order = np.concatenate(self.train_parts)
        bounds = np.cumsum([0] + [len(p) for p in self.train_parts])
        dataset = replace(
            self.dataset, train_x=self.dataset.train_x[order], train_y=self.dataset.train_y[order]
        )
        parts = [np.arange(lo, hi) for lo, hi in itertools.pairwise(bounds)]
        return Population(dataset, parts, self.test_parts)

    def statistics(self) -> pd.DataFrame:
        """Per-client class counts of the train split and of the client's own test split."""
        c = self.dataset.num_classes
        rows = []
        for split, labels, parts in (
            ("train", self.dataset.train_y.numpy(), self.train_parts),
            ("test", self.dataset.test_y.numpy(), self.test_parts),
        ):
            for cid, counts in enumerate(class_counts(labels, parts, c)):
                rows.append(
                    {
                        "client": cid,
                        "split": split,
                        "total": int(counts.sum()),
                        **{f"class_{k}": int(v) for k, v in enumerate(counts)},
                    }
                )
        return pd.DataFrame(rows)


def default_out_dir(scenario: Scenario) -> Path:
    return default_run_dir(scenario.name)


def build_population(scenario: Scenario) -> Population:
    """Load and split the data; settings the data cannot satisfy become ScenarioErrors."""
    try:
        return _build_population(scenario)
    except ValueError as exc:
        raise ScenarioError(f"dataset/partition settings cannot be met: {exc}") from None


def load_scenario_dataset(scenario: Scenario) -> ImageDataset:
    """The scenario's dataset with its seeded subsets, not yet split into clients."""
    ds_cfg = scenario.dataset
    return load_dataset(
        ds_cfg.name,
        ds_cfg.root,
        train_samples=ds_cfg.train_samples,
        test_samples=ds_cfg.test_samples,
        seed=scenario.seed,
    )


def _build_population(scenario: Scenario) -> Population:
    part_cfg = scenario.partition
    dataset = load_scenario_dataset(scenario)
    train_labels = dataset.train_y.numpy()
    parts = partition_indices(
        train_labels,
        scenario.clients.count,
        part_cfg.scheme,
        rng=numpy_rng(scenario.seed, "partition"),
        alpha=part_cfg.alpha,
        classes_per_client=part_cfg.classes_per_client,
        min_samples=part_cfg.min_samples,
    )
    counts = class_counts(train_labels, parts, dataset.num_classes)
    proportions = counts / counts.sum(axis=1, keepdims=True)
    test_parts = client_test_indices(
        dataset.test_y.numpy(),
        proportions,
        part_cfg.test_samples_per_client,
        numpy_rng(scenario.seed, "client-test"),
    )
    return Population(dataset, parts, test_parts)


def model_spec(scenario: Scenario, dataset: ImageDataset) -> ModelSpec:
    m = scenario.model
    return ModelSpec(
        extractor=m.extractor,
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
        num_experts=scenario.clients.count,
        feature_dim=m.feature_dim,
        expert_hidden=m.expert_hidden,
        gate_hidden=m.gate_hidden,
        projection_dim=m.projection_dim,
    )


def device_profile(scenario: Scenario, device_classes: list[str | None]) -> DeviceProfile:
    """Each client's speed: its device class's (or the default client speed), over its straggler
    factor."""
    dev, strag = scenario.devices, scenario.stragglers
    return DeviceProfile.build(
        scenario.clients.count,
        client_gflops=[dev.classes_gflops.get(c or "", dev.client_gflops) for c in device_classes],
        server_gflops=dev.server_gflops,
        straggler_fraction=strag.fraction,
        straggler_slowdown=strag.slowdown,
        lognormal_sigma=strag.lognormal_sigma,
        dropout=strag.dropout,
        availability_period_s=strag.availability_period_s,
        online_fraction=strag.online_fraction,
        rng=numpy_rng(scenario.seed, "stragglers"),
    )


def run_scenario(
    scenario: Scenario,
    out_dir: Path,
    console: Any = None,
    resume: bool = False,
    network: NetworkSetup | None = None,
) -> dict[str, Any]:
    """Run every method of the scenario and write the run directory; returns the summary.

    Finished work is checkpointed beside `out_dir` (see checkpoint.py); with `resume` the run
    continues from that checkpoint. An interruption raises `RunInterrupted` (checkpoint kept).
    Every refusal comes before the first task: the run directory is checked (and its checkpoint
    taken) here, and nothing after the work checks it again (the lock keeps other runs out)."""
    out_dir = named_dir(out_dir)
    if not resume:  # (a resume checks its own way: the directory may be complete)
        check_output_dir(out_dir)
    device = resolve_device(scenario.runtime.device)
    if network is None:  # (the CLI hands on the one it checked)
        network = build_network(scenario.network, scenario.clients.count, scenario.seed)
    checkpoint = open_checkpoint(out_dir, scenario.model_dump(mode="json"), resume)
    finished: Finished | None = None
    try:
        finished = Finished(checkpoint)
        summary = _run(scenario, out_dir, console, device, network, finished)
        checkpoint.finish()
        return summary
    except KeyboardInterrupt as exc:
        raise _interrupted(exc, scenario, finished) from None
    except BaseException:
        if finished is None or not finished.saved_anything:
            checkpoint.finish()  # nothing worth resuming: leave no folder behind
        raise
    finally:
        checkpoint.release()


def _interrupted(
    exc: KeyboardInterrupt, scenario: Scenario, finished: Finished | None
) -> RunInterrupted:
    done = finished.results if finished is not None else {}
    pending = [
        p
        for p in (finished.shared if finished is not None else [])
        if any(m.startswith(f"{p}/") and m not in done for m in scenario.methods)
    ]
    detail = f" (and the shared stages 1-2 of {', '.join(pending)})" if pending else ""
    return RunInterrupted(signal_number(exc), len(done), len(scenario.methods), detail)


def _run(
    scenario: Scenario,
    out_dir: Path,
    console: Any,
    device: str,
    network: NetworkSetup,
    finished: Finished,
) -> dict[str, Any]:
    torch.set_num_threads(scenario.runtime.torch_threads or os.cpu_count() or 1)
    client_ids = list(range(scenario.clients.count))
    recorder = finished.recorder
    # The data loads in a thread while the backend boots (starting Ray takes seconds).
    with ThreadPoolExecutor(max_workers=1) as loader:
        loading = loader.submit(build_population, scenario)
        backend = make_backend(scenario.runtime, client_ids)
        loaded = _wait_for(loading, backend)
    try:
        # Client after client, so the centralized baseline can upload each client's slice and
        # the clients' states share storage with it (one copy of the train set in memory: the
        # set in its first order is dropped, here and in the finished future).
        population = loaded.in_client_order()
        del loaded, loading
        dataset = population.dataset
        spec = model_spec(scenario, dataset)
        sizes = [len(p) for p in population.train_parts]
        train_x, train_y = dataset.train_x, dataset.train_y
        backend.host(
            ClientFactory.from_tensors(spec, train_x, train_y, sizes, scenario.runtime.device)
        )
        if console is not None:
            console.print(backend.describe(), highlight=False)
        with RunProgress(console) as progress:
            ctx = RunContext(
                scenario=scenario,
                spec=spec,
                client_ids=client_ids,
                num_train=dict(enumerate(sizes)),
                train_x=train_x,
                train_y=train_y,
                backend=backend,
                evaluator=Evaluator(
                    dataset.test_x, dataset.test_y, population.test_parts, torch.device(device)
                ),
                make_network=network.make_network,
                neighbours=lambda: network.neighbours,
                devices=device_profile(scenario, network.device_classes),
                recorder=recorder,
                progress=progress,
                device=device,
            )
            if finished.restored:
                progress.stage("resume", f"{len(finished.restored)} finished methods restored")
            results = run_methods(ctx, finished)
    finally:
        backend.close()
    handovers = record_network_events(network, recorder, results)
    summary = build_summary(scenario, dataset, results, finished.wall_s(), handovers)
    assert finished.checkpoint is not None
    write_run(
        out_dir,
        config=scenario.model_dump(mode="json"),
        summary=summary,
        recorder=recorder,
        partition=population.statistics(),
        heatmaps={
            m: r.routing_frequency for m, r in results.items() if r.routing_frequency is not None
        },
        plots=scenario.output.plots,
        staging=finished.checkpoint.staging,
        extra=link_table(network, results, console),
    )
    return summary


def _wait_for(loading: Future[Population], backend: Backend) -> Population:
    try:
        return loading.result()
    except BaseException:
        backend.close()
        raise


def run_methods(ctx: RunContext, finished: Finished | None = None) -> dict[str, MethodResult]:
    """Baselines first, then each extractor's NMoE pipeline and its gating branches; methods in
    `finished` (restored from a checkpoint) are not run again, and each one that ends is saved.
    Every method runs in worlds and random streams of its own, so skipping one changes nothing
    in the others."""
    finished = finished or Finished()
    methods = ctx.scenario.methods
    results = finished.results
    for name in BASELINES:
        if name in methods and name not in results:
            finished.method(name, BASELINE_RUNNERS[name](ctx))
    for extractor in EXTRACTORS:
        wanted = [
            parse_nmoe(m)
            for m in methods
            if m.startswith(f"nmoe/{extractor}/") and m not in results
        ]
        if not wanted:
            continue
        pipeline = finished.pipeline(ctx, extractor)
        for method in wanted:
            result = pipeline.gating(method)
            if ctx.scenario.inference.enabled:
                result.inference = pipeline.serve(method, result)
            finished.method(method.name, result)
    return results


def method_end_s(result: MethodResult) -> float:
    """The end of a method's simulated span: its training, or its serving where later."""
    end = result.log.sim_time_s
    served = result.inference
    if served is not None:
        end = max(end, served.t_start_s + served.sim_time_s)
    return end


def record_network_events(
    network: NetworkSetup, recorder: Recorder, results: dict[str, MethodResult]
) -> dict[str, int]:
    """Each method's handovers (events.csv rows) within its span; empty where nothing moves."""
    counts: dict[str, int] = {}
    for name, result in results.items():
        events = handover_events(network.mobility, method_end_s(result))
        if events is not None:
            recorder.record_events(name, events)
            counts[name] = len(events)
    return counts


def link_table(
    network: NetworkSetup, results: dict[str, MethodResult], console: Any
) -> dict[str, pd.DataFrame]:
    """Run-level tables of a network that moves: links.csv where links change (every changing
    link's states over the run's span), positions.csv where the layout is modelled."""
    end = max((method_end_s(r) for r in results.values()), default=0.0)
    tables: dict[str, pd.DataFrame] = {}
    for name, (rows, cut), record in (
        ("links.csv", link_states(network.link_changes, network.mobility, end), LinkStateRecord),
        ("positions.csv", positions(network.mobility, end), PositionRecord),
    ):
        if cut and console is not None:
            console.print(
                f"{name}: cut at {len(rows):,} rows ({end:g} s of simulated time would take more)",
                highlight=False,
            )
        if rows:
            names = [f.name for f in fields(record)]
            tables[name] = pd.DataFrame([asdict(r) for r in rows], columns=names)
    return tables


def build_summary(
    scenario: Scenario,
    dataset: ImageDataset,
    results: dict[str, MethodResult],
    wall_s: float,
    handovers: dict[str, int] | None = None,
) -> dict[str, Any]:
    """summary.json's object: the run's `RunSummary`, as JSON."""
    handovers = handovers or {}
    methods: dict[str, MethodSummary] = {}
    for name in scenario.methods:  # in the scenario's order
        r = results[name]
        methods[name] = MethodSummary(
            accuracy_global=r.scores.accuracy_global,
            accuracy_local=r.scores.accuracy_local,
            bytes_total=r.log.bytes_total,
            sim_time_s=r.log.sim_time_s,
            wall_time_s=r.log.wall_time_s,
            stages=r.log.stages(),
            updates=r.log.update_counts(),
            per_client=PerClient(
                accuracy_global=r.scores.global_per_client,
                accuracy_local=r.scores.local_per_client,
            ),
            inference=r.inference,
            handovers=handovers.get(name),
        )
    return RunSummary(
        scenario=scenario.name,
        seed=scenario.seed,
        dataset=DatasetInfo(
            name=dataset.name,
            train=int(dataset.train_y.numel()),
            test=int(dataset.test_y.numel()),
        ),
        clients=scenario.clients.count,
        partition=scenario.partition.model_dump(mode="json"),
        wall_time_s=wall_s,
        methods=methods,
    ).to_dict()
