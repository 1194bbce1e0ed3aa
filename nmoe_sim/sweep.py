"""Sweeps: run a scenario over a grid of overrides, one run directory per point, one table.

Points run in parallel processes where the machine has the cores for it; each point's torch gets
an equal share of the cores. The sweep table (`sweep.csv`) has one row per point and method:
the swept keys' values and the method's summary figures.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nmoe_sim.config import Scenario, ScenarioError, load_scenario
from nmoe_sim.telemetry.output import check_output_dir
from nmoe_sim.telemetry.summary import InferenceSummary, MethodSummary, RunSummary, sweep_figures

# The summary fields marked as sweep figures; a method's `inference` ones become
# `inference_<name>` columns (methods that served only).
FIGURES = sweep_figures(MethodSummary)
INFERENCE_FIGURES = sweep_figures(InferenceSummary)


@dataclass(frozen=True)
class GridAxis:
    key: str
    values: tuple[Any, ...]


def parse_grid(text: str) -> GridAxis:
    """`KEY=V1,V2,...` -> an axis; values parsed as YAML scalars (10 -> int, 0.5 -> float)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise ScenarioError(
            f"--grid {text!r}: expected KEY=V1,V2,... e.g. network.bandwidth_mbps=1,10"
        )
    values = []
    for item in raw.split(","):
        try:
            values.append(yaml.safe_load(item))
        except yaml.YAMLError:
            raise ScenarioError(f"--grid {key}: value {item!r} is not valid YAML") from None
    return GridAxis(key.strip(), tuple(values))


def point_name(index: int, settings: dict[str, Any]) -> str:
    parts = [f"{key.split('.')[-1]}={value}" for key, value in settings.items()]
    safe = "_".join(parts).replace("/", "-").replace(" ", "")
    return f"{index:03d}_{safe}"


@dataclass(frozen=True)
class SweepPoint:
    name: str
    settings: dict[str, Any]
    scenario: Scenario


def plan_sweep(
    path: Path, axes: Sequence[GridAxis], overrides: Sequence[str], seed: int | None
) -> list[SweepPoint]:
    """Every grid point's scenario, validated before anything runs."""
    if not axes:
        raise ScenarioError("sweep needs at least one --grid KEY=V1,V2,...")
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        raise ScenarioError(f"--grid: a key is swept twice: {keys}")
    points = []
    for index, combo in enumerate(itertools.product(*(a.values for a in axes))):
        settings = dict(zip(keys, combo, strict=True))
        point_overrides = [
            *overrides,
            *(f"{k}={yaml.safe_dump(v).strip()}" for k, v in settings.items()),
        ]
        try:
            scenario = load_scenario(path, point_overrides, seed)
        except ScenarioError as exc:
            raise ScenarioError(f"grid point {settings}: {exc}") from None
        points.append(SweepPoint(point_name(index, settings), settings, scenario))
    return points


def _run_point(point: SweepPoint, out_dir: Path, threads: int) -> dict[str, Any]:
    from nmoe_sim.engine import run_scenario  # heavy import, only in the worker

    scenario = point.scenario.model_copy(deep=True)
    scenario.runtime.torch_threads = scenario.runtime.torch_threads or threads
    return run_scenario(scenario, out_dir / point.name)


def sweep_rows(points: Sequence[SweepPoint], summaries: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """sweep.csv: one row per point and method, from each point's summary.json object."""
    rows = []
    for point, summary in zip(points, summaries, strict=True):
        for method, m in RunSummary.from_dict(summary).methods.items():
            served = m.inference
            rows.append(
                {
                    "point": point.name,
                    **point.settings,
                    "method": method,
                    **{f: getattr(m, f) for f in FIGURES},
                    **(
                        {f"inference_{f}": getattr(served, f) for f in INFERENCE_FIGURES}
                        if served is not None
                        else {}
                    ),
                }
            )
    # Columns in first-seen order: a method without inference figures leaves them empty.
    return pd.DataFrame(rows)


def run_sweep(points: Sequence[SweepPoint], out_dir: Path, jobs: int | None = None) -> pd.DataFrame:
    check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    if jobs is None and any(p.scenario.runtime.backend == "ray" for p in points):
        jobs = 1  # each point's actors already take the cluster's CPUs
    jobs = max(1, min(jobs or cores, len(points), cores))
    threads = max(1, cores // jobs)
    if jobs == 1:
        summaries = [_run_point(p, out_dir, threads) for p in points]
    else:
        # spawn, not fork: a forked copy of a process that already ran torch can deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(_run_point, p, out_dir, threads) for p in points]
            summaries = [f.result() for f in futures]
    table = sweep_rows(points, summaries)
    table.to_csv(out_dir / "sweep.csv", index=False)
    return table
