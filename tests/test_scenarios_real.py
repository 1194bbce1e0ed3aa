"""The shipped scenarios on real Fashion-MNIST, through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nmoe_sim.config import load_scenario
from nmoe_sim.methods import PAPER_METHODS

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
needs_fmnist = pytest.mark.skipif(
    not DEBIAN_FMNIST.exists() and "NMOE_SIM_DATA" not in os.environ,
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)


def _run(scenario: str, out: Path, *extra: str) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "run",
            str(ROOT / scenario),
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_scenario_is_valid(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.methods == list(PAPER_METHODS)


@needs_fmnist
def test_smoke_scenario_end_to_end(tmp_path: Path) -> None:
    summary = _run("scenarios/smoke.yaml", tmp_path / "smoke")
    assert list(summary["methods"]) == list(PAPER_METHODS)
    assert summary["dataset"] == {"name": "fashion_mnist", "train": 3000, "test": 1000}
    for name, m in summary["methods"].items():
        assert 0.0 <= m["accuracy_global"] <= 1.0, name
        assert m["sim_time_s"] > 0, name
    png = tmp_path / "smoke" / "heatmaps" / "nmoe_fedsc_fedgate.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@needs_fmnist
def test_mec_fedsc_fedgate_beats_local_at_dirichlet_half(tmp_path: Path) -> None:
    summary = _run("scenarios/mec.yaml", tmp_path / "mec")
    methods = summary["methods"]
    assert methods["nmoe/fedsc/fedgate"]["accuracy_global"] > methods["local"]["accuracy_global"]
