"""A two-node Ray cluster on this machine: actors spread over both nodes, and `--ray-address`
joining it from the command line gives the in-process numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray
import yaml
from ray.cluster_utils import Cluster

from nmoe_sim.config import RuntimeConfig
from nmoe_sim.engine import run_scenario
from nmoe_sim.runtime.ray_backend import RayBackend
from tests.test_engine import tiny_scenario
from tests.test_ray_backend import _factory
from tests.test_scenarios_real import ROOT


@pytest.fixture(scope="module")
def two_nodes() -> Cluster:
    if ray.is_initialized():
        ray.shutdown()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()


def test_actors_spread_over_both_nodes(two_nodes: Cluster) -> None:
    ray.init(address=two_nodes.address, log_to_driver=False)
    try:
        factory, ids = _factory(tiny_scenario())
        backend = RayBackend(ids, RuntimeConfig(backend="ray"))
        backend.host(factory)
        try:
            placements = backend.placements()
        finally:
            backend.close()
    finally:
        ray.shutdown()
    assert len(placements) == 2  # one CPU per node, one CPU per actor
    assert len({p["node_id"] for p in placements}) == 2
    assert sorted(c for p in placements for c in p["clients"]) == ids


def test_cli_joins_the_cluster_and_matches_inprocess(two_nodes: Cluster, tmp_path: Path) -> None:
    scenario = tiny_scenario(methods=["fedavg", "nmoe/fedce/rollgate"])
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(scenario.model_dump(mode="json", exclude={"output"})))
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "run",
            str(path),
            "--out",
            str(tmp_path / "ray"),
            "--ray-address",
            two_nodes.address,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    on_cluster = json.loads((tmp_path / "ray" / "summary.json").read_text())
    config = yaml.safe_load((tmp_path / "ray" / "config.yaml").read_text())
    assert config["runtime"]["backend"] == "ray"
    assert config["runtime"]["ray_address"] == two_nodes.address
    local = run_scenario(scenario, tmp_path / "inprocess")
    for name, m in local["methods"].items():
        assert on_cluster["methods"][name]["accuracy_global"] == m["accuracy_global"], name
