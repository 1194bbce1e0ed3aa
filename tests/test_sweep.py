"""Sweeps: grid parsing, validation before work, one run per point, the sweep table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from nmoe_sim.cli import app
from nmoe_sim.config import ScenarioError
from nmoe_sim.sweep import GridAxis, parse_grid, plan_sweep, run_sweep

TINY = """
name: tiny
seed: 3
methods: [local, fedavg]
dataset: {name: synthetic, train_samples: 300, test_samples: 100}
partition: {scheme: iid, test_samples_per_client: 30}
clients: {count: 3}
model: {feature_dim: 8, expert_hidden: 8, gate_hidden: 4, projection_dim: 4}
baselines: {local: {epochs: 1}, fedavg: {rounds: 2}}
runtime: {device: cpu, torch_threads: 1}
output: {plots: false}
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_parse_grid_reads_yaml_scalars() -> None:
    assert parse_grid("network.bandwidth_mbps=1,10,0.5") == GridAxis(
        "network.bandwidth_mbps", (1, 10, 0.5)
    )
    assert parse_grid("federation.mode=sync,fedbuff").values == ("sync", "fedbuff")
    for bad in ("nokey", "=1,2", "a.b="):
        with pytest.raises(ScenarioError, match="--grid"):
            parse_grid(bad)


def test_every_point_is_validated_before_anything_runs(scenario: Path) -> None:
    with pytest.raises(ScenarioError, match=r"devices\.client_gflops"):
        plan_sweep(scenario, [parse_grid("devices.client_gflops=5,-1")], [], None)
    with pytest.raises(ScenarioError, match="unknown key"):
        plan_sweep(scenario, [parse_grid("devices.speed=5")], [], None)
    points = plan_sweep(
        scenario, [parse_grid("devices.client_gflops=5,10"), parse_grid("seed=1,2")], [], None
    )
    assert [p.settings for p in points] == [
        {"devices.client_gflops": 5, "seed": 1},
        {"devices.client_gflops": 5, "seed": 2},
        {"devices.client_gflops": 10, "seed": 1},
        {"devices.client_gflops": 10, "seed": 2},
    ]
    assert points[3].scenario.devices.client_gflops == 10
    assert len({p.name for p in points}) == 4


def test_sweep_table_has_a_row_per_point_and_method(scenario: Path, tmp_path: Path) -> None:
    points = plan_sweep(scenario, [parse_grid("devices.client_gflops=5,10")], [], None)
    table = run_sweep(points, tmp_path / "sweep", jobs=1)
    assert len(table) == 2 * 2
    on_disk = pd.read_csv(tmp_path / "sweep" / "sweep.csv")
    assert list(on_disk["method"]) == ["local", "fedavg", "local", "fedavg"]
    for point in points:
        assert (tmp_path / "sweep" / point.name / "summary.json").is_file()
    fedavg = on_disk[on_disk["method"] == "fedavg"].set_index("devices.client_gflops")
    # Compute time halves when the clients are twice as fast; the bytes do not change.
    assert fedavg.loc[10, "sim_time_s"] == pytest.approx(fedavg.loc[5, "sim_time_s"] / 2)
    assert fedavg.loc[10, "bytes_total"] == fedavg.loc[5, "bytes_total"]


def test_sweep_cli_runs_points_in_parallel_processes(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = CliRunner().invoke(
        app, ["sweep", str(scenario), "--grid", "seed=1,2", "--out", str(out), "--jobs", "2"]
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out / "sweep.csv")) == 4


def test_sweep_cli_bad_grid_exits_2(scenario: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["sweep", str(scenario), "--grid", "clients.count=1,2", "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 2
    assert "clients.count" in " ".join(result.stderr.split())
    assert not (tmp_path / "s").exists()


def test_grid_values_are_read_with_the_scenario_loaders_bounds() -> None:
    with pytest.raises(ScenarioError, match=r"--grid seed: value .*an integer of 5000 digits"):
        parse_grid("seed=" + "9" * 5000)
    assert parse_grid("partition.alpha=0.1,1").values == (0.1, 1)
