"""The run directory: the one place results are written.

Files are assembled in a hidden staging folder beside the target and moved into place only when
the run has finished, so a failed or interrupted run leaves no half-written directory behind.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from nmoe_sim.telemetry.output import method_slug, place_dir
from nmoe_sim.telemetry.plots import gating_heatmap
from nmoe_sim.telemetry.records import Recorder
from nmoe_sim.telemetry.schema import RUN_TABLES, columns

VERSIONED = ("nmoe-sim", "torch", "torchvision", "simpy", "numpy", "networkx", "pydantic", "ray")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_run(
    out_dir: Path,
    *,
    config: dict[str, Any],
    summary: dict[str, Any],  # summary.json's object: a RunSummary's to_dict()
    recorder: Recorder,
    partition: pd.DataFrame,
    heatmaps: dict[str, np.ndarray],
    plots: bool,
    staging: Path | None = None,
    extra: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write the run directory via `staging` (default: a hidden folder beside it), put in place
    once every file is written. `out_dir` must not exist or be empty: the caller checks that
    before the work (check_output_dir), never after it."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = staging or out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        resolved = {**config, "package_versions": package_versions()}
        (staging / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        for name, rows in recorder.tables().items():
            table = pd.DataFrame(rows, columns=list(columns(RUN_TABLES[name])))
            table.to_csv(staging / name, index=False)
            if name == "trace.csv":
                table.to_parquet(staging / "trace.parquet", index=False)
        partition.to_csv(staging / "partition.csv", index=False)
        for name, table in (extra or {}).items():  # run-level tables (links.csv)
            table.to_csv(staging / name, index=False)
        if heatmaps:
            folder = staging / "heatmaps"
            folder.mkdir()
            for method, freq in heatmaps.items():
                slug = method_slug(method)
                frame = pd.DataFrame(freq, columns=[f"expert_{e}" for e in range(freq.shape[1])])
                frame.insert(0, "client", range(freq.shape[0]))
                frame.to_csv(folder / f"{slug}.csv", index=False)
                if plots:
                    gating_heatmap(freq, f"Gating: {method}", folder / f"{slug}.png")
        place_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir
