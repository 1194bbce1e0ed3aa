"""Sweeps: run a scenario over a grid of overrides, one run directory per point, one table.

Points run in parallel processes where the machine has the cores for it; each point's torch gets
an equal share of the cores. The sweep table (`sweep.csv`) has one row per point and method:
the swept keys' values and the method's summary figures.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nmoe_sim.checkpoint import MANIFEST, checkpoint_dir, scenario_changes
from nmoe_sim.config import Scenario, ScenarioError, parse_value
from nmoe_sim.interrupt import RunInterrupted, signal_number
from nmoe_sim.interrupt import install as install_signal_handlers
from nmoe_sim.preflight import check_scenario
from nmoe_sim.telemetry.output import OutputError, check_output_dir, is_complete
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
    # The scenario loader's bounded reading (digits, nesting, aliases), naming the axis.
    values = [parse_value(item, f"--grid {key.strip()}") for item in raw.split(",")]
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
    path: Path,
    axes: Sequence[GridAxis],
    overrides: Sequence[str],
    seed: int | None,
    notes: list[str] | None = None,
) -> list[SweepPoint]:
    """Every grid point's scenario, checked (network built) before anything runs; `notes`
    receives the lines naming file keys that a point's overrides made inert."""
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
            checked = check_scenario(path, point_overrides, seed)
        except ScenarioError as exc:
            raise ScenarioError(f"grid point {settings}: {exc}") from None
        if notes is not None:
            notes += checked.notes
        points.append(SweepPoint(point_name(index, settings), settings, checked.scenario))
    return points


def _point_scenario(point: SweepPoint, threads: int) -> Scenario:
    scenario = point.scenario.model_copy(deep=True)
    scenario.runtime.torch_threads = scenario.runtime.torch_threads or threads
    return scenario


@dataclass(frozen=True)
class PointOutcome:
    """A point's summary.json object, or the one-line reason it failed."""

    summary: dict[str, Any] | None
    error: str | None = None


def one_line(exc: BaseException) -> str:
    """An exception as sweep.csv's `error` cell: one line, type named unless it is ours."""
    text = " ".join(str(exc).split()) or "(no message)"
    ours = isinstance(exc, ScenarioError | OutputError) or type(exc).__name__ in USER_ERRORS
    line = text if ours else f"{type(exc).__name__}: {text}"
    return line if len(line) <= 300 else line[:297] + "..."


# Errors whose message already says what is wrong (DatasetUnavailable lives with the torch code).
USER_ERRORS = ("DatasetUnavailable",)


def _run_point(point: SweepPoint, out_dir: Path, threads: int, resume: bool) -> PointOutcome:
    """Run (or resume) one point; a failure becomes the point's outcome, not the sweep's end."""
    from nmoe_sim.engine import run_scenario  # heavy import, only where a point runs

    target = out_dir / point.name
    has_checkpoint = (checkpoint_dir(target) / MANIFEST).is_file()
    try:
        summary = run_scenario(
            _point_scenario(point, threads), target, resume=resume and has_checkpoint
        )
    except Exception as exc:  # recorded in sweep.csv; the other points go on
        return PointOutcome(None, one_line(exc))
    return PointOutcome(summary)


def _worker_started() -> None:
    """In a point's process: SIGTERM (sent by the sweep when it is interrupted) unwinds the run
    like Ctrl-C, so its checkpoint is kept and its backend closed."""
    install_signal_handlers()


_worker_interrupted = False  # a worker, once interrupted, starts no further point


def _run_point_in_worker(
    point: SweepPoint, out_dir: Path, threads: int, resume: bool
) -> PointOutcome:
    global _worker_interrupted
    if _worker_interrupted:  # points already queued to this process when the sweep stopped
        raise KeyboardInterrupt
    try:
        return _run_point(point, out_dir, threads, resume)
    except KeyboardInterrupt:
        _worker_interrupted = True
        raise


def sweep_rows(points: Sequence[SweepPoint], outcomes: Sequence[PointOutcome]) -> pd.DataFrame:
    """sweep.csv: one row per point and method, from each point's summary.json object, then
    `status` (ok/failed) and `error`; a failed point has one row with its error."""
    rows = []
    for point, outcome in zip(points, outcomes, strict=True):
        if outcome.summary is None:
            rows.append({"point": point.name, **point.settings, "status": "failed"})
            rows[-1]["error"] = outcome.error
            continue
        for method, m in RunSummary.from_dict(outcome.summary).methods.items():
            served = m.inference
            rows.append(
                {
                    "point": point.name,
                    **point.settings,
                    "method": method,
                    **{f: getattr(m, f) for f in FIGURES if getattr(m, f) is not None},
                    **(
                        {f"inference_{f}": getattr(served, f) for f in INFERENCE_FIGURES}
                        if served is not None
                        else {}
                    ),
                    "status": "ok",
                    "error": "",
                }
            )
    # Columns in first-seen order over the points that ran (a method without inference figures
    # leaves them empty), status and error last whichever point came first.
    columns: list[str] = []
    for row in rows:
        if row["status"] == "ok":
            columns += [c for c in row if c not in columns and c not in ("status", "error")]
    for row in rows:
        columns += [c for c in row if c not in columns and c not in ("status", "error")]
    table = pd.DataFrame(rows, columns=[*columns, "status", "error"])
    failed = table["status"] == "failed"
    if failed.any():
        # A failed point's empty cells would turn integer figures into floats (12 -> 12.0):
        # nullable integers keep the successful rows' values as they are written without one.
        for column in columns:
            values = [r[column] for r in rows if r["status"] == "ok" and column in r]
            if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                table[column] = table[column].astype("Int64")
    return table


def _complete_summary(point: SweepPoint, target: Path, threads: int) -> dict[str, Any]:
    """A finished point's summary, once its config is the one this sweep would run."""
    config = yaml.safe_load((target / "config.yaml").read_text())
    config.pop("package_versions", None)
    changes = scenario_changes(config, _point_scenario(point, threads).model_dump(mode="json"))
    if changes:
        raise ScenarioError(
            f"sweep point {point.name} in {target.parent} was run with other settings "
            f"({'; '.join(changes[:5])}); resume with the same grid and options, or choose "
            "another --out"
        )
    summary: dict[str, Any] = json.loads((target / "summary.json").read_text())
    return summary


def run_sweep(
    points: Sequence[SweepPoint], out_dir: Path, jobs: int | None = None, resume: bool = False
) -> pd.DataFrame:
    """Run every point (with `resume`: every point not complete yet) and write sweep.csv; a
    failed point is a row with status `failed`. Interruptions raise `RunInterrupted`."""
    if resume and not out_dir.is_dir():
        raise OutputError(f"no sweep to resume at {out_dir}; run without --resume to start it")
    if not resume:
        check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    if jobs is None and any(p.scenario.runtime.backend == "ray" for p in points):
        jobs = 1  # each point's actors already take the cluster's CPUs
    # From every point, not the ones left: a resumed point keeps the threads it started with.
    jobs = max(1, min(jobs or cores, len(points), cores))
    threads = max(1, cores // jobs)
    outcomes: dict[int, PointOutcome] = {}
    if resume:
        for i, p in enumerate(points):
            if is_complete(out_dir / p.name):
                outcomes[i] = PointOutcome(_complete_summary(p, out_dir / p.name, threads))
    todo = [i for i in range(len(points)) if i not in outcomes]
    try:
        if jobs == 1 or len(todo) <= 1:
            for i in todo:
                outcomes[i] = _run_point(points[i], out_dir, threads, resume)
        else:
            _run_in_processes(points, todo, out_dir, jobs, threads, resume, outcomes)
    except KeyboardInterrupt as exc:
        done = sum(o.summary is not None for o in outcomes.values())
        raise RunInterrupted(signal_number(exc), done, len(points), unit="points") from None
    table = sweep_rows(points, [outcomes[i] for i in range(len(points))])
    tmp = out_dir / ".sweep.csv.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, out_dir / "sweep.csv")
    return table


def _run_in_processes(
    points: Sequence[SweepPoint],
    todo: list[int],
    out_dir: Path,
    jobs: int,
    threads: int,
    resume: bool,
    outcomes: dict[int, PointOutcome],
) -> None:
    # spawn, not fork: a forked copy of a process that already ran torch can deadlock.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_started)
    try:
        futures = {
            i: pool.submit(_run_point_in_worker, points[i], out_dir, threads, resume) for i in todo
        }
        for i, future in futures.items():
            try:
                outcomes[i] = future.result()
            except BrokenProcessPool as exc:  # a point's process died (e.g. out of memory)
                outcomes[i] = PointOutcome(None, f"its process died: {one_line(exc)}")
    except KeyboardInterrupt:
        # Points still running stop as an interrupted run does (checkpoint kept): SIGTERM them.
        # (ProcessPoolExecutor has no public way to reach its workers before Python 3.14.)
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            if proc.is_alive():
                proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
