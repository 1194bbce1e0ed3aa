"""Mobility and handover: layouts, tracks, A3 handovers at times derived by hand, and a run whose
clients move (handovers counted, bytes conserved, same seed same outputs)."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from nmoe_sim.config import ScenarioError, load_scenario
from nmoe_sim.network.build import build_network
from nmoe_sim.network.mobility.attachment import Mobility
from nmoe_sim.network.mobility.layout import build_layout
from nmoe_sim.network.mobility.models.trace import PositionTraceError, read_positions
from nmoe_sim.network.mobility.schema import MobilityConfig
from nmoe_sim.network.topology import load_topology, mec

D = 1000.0  # metres between the two base stations of the line topology


def line_topology(tmp_path: Path, clients: int = 1) -> Path:
    """Two base stations D apart on the x axis, clients by bs0, a cloud behind both."""
    nodes = [
        {"name": "cloud", "role": "cloud", "device_class": "s"},
        {"name": "bs0", "role": "edge", "device_class": "e", "x_m": 0.0, "y_m": 0.0},
        {"name": "bs1", "role": "edge", "device_class": "e", "x_m": D, "y_m": 0.0},
    ]
    links = [
        {"a": "cloud", "b": "bs0", "bandwidth_mbps": 1000, "latency_ms": 5},
        {"a": "cloud", "b": "bs1", "bandwidth_mbps": 1000, "latency_ms": 5},
    ]
    for i in range(clients):
        nodes.append(
            {"name": f"c{i}", "role": "client", "device_class": "p", "x_m": 100.0, "y_m": 0.0}
        )
        links.append({"a": "bs0", "b": f"c{i}", "bandwidth_mbps": 10, "latency_ms": 10})
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump({"nodes": nodes, "links": links}))
    return path


def walk_trace(tmp_path: Path, rows: list[tuple[float, str, float, float]]) -> Path:
    path = tmp_path / "walk.csv"
    path.write_text(
        "time_s,client,x_m,y_m\n" + "".join(f"{t},{c},{x},{y}\n" for t, c, x, y in rows)
    )
    return path


def test_a3_handover_time_by_hand(tmp_path: Path) -> None:
    # c0 walks from x = 100 to 900 m at 10 m/s (t = 0..80 s). With 128.1 + 37.6 log10(d km),
    # bs1 is heard better by 3 dB once d0 / d1 > 10^(3 / 37.6): x > 1000 r / (1 + r). The first
    # measurement (every 0.2 s) at or after that starts the time to trigger; the handover is the
    # first measurement at least 256 ms later: 0.4 s on.
    topo = load_topology(line_topology(tmp_path))
    trace = walk_trace(tmp_path, [(0, "c0", 100, 0), (80, "c0", 900, 0)])
    cfg = MobilityConfig(model="trace", trace=str(trace))
    mobility = Mobility(cfg, topo, seed=0, clients=["c0"])
    r = 10 ** (3 / 37.6)
    x_star = D * r / (1 + r)
    t_star = (x_star - 100) / 10
    first = math.ceil(t_star / 0.2 - 1e-9) * 0.2
    (handover,) = mobility.handovers_between(-1, 100)
    assert (handover.client, handover.source, handover.target) == ("c0", "bs0", "bs1")
    assert handover.t_s == pytest.approx(first + 0.4, abs=1e-9)
    assert mobility.serving_at("c0", handover.t_s - 0.1) == "bs0"
    assert mobility.serving_at("c0", handover.t_s) == "bs1"


def test_no_handover_within_the_hysteresis(tmp_path: Path) -> None:
    # Walking to just past the middle (bs1 better, but by less than 3 dB): no handover.
    topo = load_topology(line_topology(tmp_path))
    r = 10 ** (2.5 / 37.6)  # 2.5 dB better at the end
    x_end = D * r / (1 + r)
    trace = walk_trace(tmp_path, [(0, "c0", 100, 0), (50, "c0", x_end, 0)])
    mobility = Mobility(MobilityConfig(model="trace", trace=str(trace)), topo, 0, ["c0"])
    assert mobility.handovers_between(-1, 1000) == []


def test_time_to_trigger_filters_a_short_excursion(tmp_path: Path) -> None:
    # c0 steps deep into bs1's cell for 0.15 s only (less than the 256 ms to trigger).
    topo = load_topology(line_topology(tmp_path))
    rows = [(0, "c0", 100, 0), (10, "c0", 100, 0), (10.05, "c0", 950, 0), (10.2, "c0", 950, 0)]
    rows.append((10.25, "c0", 100, 0))
    trace = walk_trace(tmp_path, rows)
    cfg = MobilityConfig(
        model="trace", trace=str(trace), handover={"measurement_ms": 50, "time_to_trigger_ms": 256}
    )
    assert Mobility(cfg, topo, 0, ["c0"]).handovers_between(-1, 100) == []
    fast = cfg.model_copy(
        update={"handover": cfg.handover.model_copy(update={"time_to_trigger_ms": 100})}
    )
    assert len(Mobility(fast, topo, 0, ["c0"]).handovers_between(-1, 100)) == 2  # there and back


def test_default_layout_puts_clients_in_their_cells_on_a_grid() -> None:
    topo = mec(4, 5, access_mbps=10, access_latency_ms=5, backhaul_mbps=100, backhaul_latency_ms=1)
    layout = build_layout(topo, 400.0, seed=3)
    assert layout.stations == {
        "bs0": (0.0, 0.0),
        "bs1": (400.0, 0.0),
        "bs2": (0.0, 400.0),
        "bs3": (400.0, 400.0),
    }
    assert layout.area == (-200.0, -200.0, 600.0, 600.0)
    for client, (x, y) in layout.clients.items():
        bx, by = layout.stations[layout.home[client]]
        assert math.hypot(x - bx, y - by) <= 200.0
    mobility = Mobility(MobilityConfig(), topo, 3, list(topo.clients))
    assert all(mobility.serving_at(c, 0.0) == layout.home[c] for c in topo.clients)
    assert not mobility.hands_over  # static clients never hand over


@pytest.mark.parametrize("model", ["random_waypoint", "gauss_markov"])
def test_tracks_stay_in_the_area_and_are_seeded(model: str) -> None:
    topo = mec(2, 3, access_mbps=10, access_latency_ms=5, backhaul_mbps=100, backhaul_latency_ms=1)
    cfg = MobilityConfig(model=model, speed_mps=5.0)
    a = Mobility(cfg, topo, 7, list(topo.clients))
    b = Mobility(cfg, topo, 7, list(topo.clients))
    ts = np.linspace(0, 2000, 4001)
    x0, y0, x1, y1 = a.layout.area
    for c in topo.clients:
        xs, ys = a.tracks[c].positions(ts)
        assert np.all((xs >= x0 - 1e-9) & (xs <= x1 + 1e-9) & (ys >= y0 - 1e-9) & (ys <= y1 + 1e-9))
        assert b.tracks[c].at(1234.5) == a.tracks[c].at(1234.5)
    assert a.handovers_between(-1, 2000) == b.handovers_between(-1, 2000)
    assert a.handovers_between(-1, 2000)  # 2,000 s at 5 m/s among two cells: some


def test_random_waypoint_walks_at_its_speed_and_pauses() -> None:
    topo = mec(2, 2, access_mbps=10, access_latency_ms=5, backhaul_mbps=100, backhaul_latency_ms=1)
    cfg = MobilityConfig(model="random_waypoint", speed_mps=1.4, pause_s=2.0)
    track = Mobility(cfg, topo, 1, list(topo.clients)).tracks["c0"]
    track.reach(3000.0)
    legs = list(zip(track.times, track.xs, track.ys, strict=True))
    for (t0, x0, y0), (t1, x1, y1) in itertools.pairwise(legs):
        moved = math.hypot(x1 - x0, y1 - y0)
        if moved == 0:
            assert t1 - t0 == pytest.approx(2.0)  # a pause
        else:
            assert moved / (t1 - t0) == pytest.approx(1.4, rel=1e-9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time_s,client,x_m,y_m\n", "empty position trace"),
        ("0,c0,100,0\n5,c0,120,0\n3,c0,130,0\n", ":3: time_s 3 for c0 does not come after 5"),
        ("0,c0,100,0\n1,c0,5000,0\n", ":2: position (5000, 0) m is outside the layout's area"),
        ("0,c9,100,0\n", ":1: unknown client 'c9'"),
        ("0,c0,100\n", ":1: 3 columns"),
        ("0,c0,abc,0\n", ":1: time_s, x_m and y_m must be numbers"),
        ("-1,c0,100,0\n", ":1: time_s must be >= 0"),
    ],
)
def test_bad_position_traces_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    topo = load_topology(line_topology(tmp_path))
    layout = build_layout(topo, 500.0, 0)
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(PositionTraceError, match=re.escape(message)) as err:
        read_positions(path, layout)
    assert "bad.csv" in str(err.value)


def test_every_client_must_be_in_a_position_trace(tmp_path: Path) -> None:
    topo = load_topology(line_topology(tmp_path, clients=2))
    path = walk_trace(tmp_path, [(0, "c0", 100, 0)])
    with pytest.raises(PositionTraceError, match="no rows for c1"):
        read_positions(path, build_layout(topo, 500.0, 0))


def test_positions_on_some_nodes_only_are_refused(tmp_path: Path) -> None:
    spec = yaml.safe_load(line_topology(tmp_path, clients=2).read_text())
    del spec["nodes"][3]["x_m"], spec["nodes"][3]["y_m"]
    path = tmp_path / "half.yaml"
    path.write_text(yaml.safe_dump(spec))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"clients: {{count: 2}}\ndataset: {{name: synthetic}}\nnetwork: {{topology: {path}}}\n"
    )
    sc = load_scenario(scenario, ["network.mobility.model=random_waypoint"])
    with pytest.raises(ScenarioError, match=r"network\.mobility: the topology gives positions"):
        build_network(sc.network, 2, 0)


# ------------------------------------------------------------------ a run whose clients move

RUN = """
name: walk
seed: 1
methods: [fedavg, nmoe/fedce/fedgate]
dataset: {name: synthetic, train_samples: 600, test_samples: 200}
partition: {scheme: iid, test_samples_per_client: 40}
clients: {count: 4}
model: {feature_dim: 16, expert_hidden: 16, gate_hidden: 16, projection_dim: 16}
stages:
  extractor: {rounds: 2, local_epochs: 1}
  expert: {epochs: 1}
  gate: {rounds: 2, local_epochs: 1}
baselines:
  fedavg: {rounds: 3, local_epochs: 1}
devices: {client_gflops: 0.02}
network:
  topology: mec
  cells: 2
  bandwidth_mbps: 2
  mobility:
    model: random_waypoint
    speed_mps: 30
    pause_s: 0
    inter_site_distance_m: 80
inference: {enabled: true, rate_qps: 2, queries_per_client: 10}
output: {plots: false}
"""


@pytest.fixture(scope="module")
def moving_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from nmoe_sim.engine import run_scenario

    root = tmp_path_factory.mktemp("walk")
    path = root / "walk.yaml"
    path.write_text(RUN)
    out = []
    for name in ("a", "b"):
        scenario = load_scenario(path)
        run_scenario(scenario, root / name)
        out.append(root / name)
    return out[0], out[1]


def test_a_moving_run_counts_its_handovers_and_conserves_bytes(moving_runs) -> None:
    import pandas as pd

    run, _ = moving_runs
    summary = json.loads((run / "summary.json").read_text())
    events = pd.read_csv(run / "events.csv")
    trace = pd.read_csv(run / "trace.csv")
    for method, figures in summary["methods"].items():
        mine = events[events.method == method]
        assert figures["handovers"] == len(mine) > 0
        assert set(mine.kind) == {"handover"}
        assert mine.t_s.max() <= max(
            figures["sim_time_s"],
            figures.get("inference", {}).get("t_start_s", 0)
            + figures.get("inference", {}).get("sim_time_s", 0),
        )
        # A gating branch's totals include its extractor pipeline's rows ("nmoe/fedce").
        lineage = [method, method.rsplit("/", 1)[0]] if method.count("/") == 2 else [method]
        training = trace[trace.method.isin(lineage) & (trace.stage != "inference")]
        assert training.size_bytes.sum() == figures["bytes_total"]
    # Some transfer ended on a path through a cell other than its client's home cell.
    assert trace.path.str.contains("c0>bs1|bs1>c0|c1>bs1|bs1>c1").any()


def test_same_seed_moving_runs_are_identical(moving_runs) -> None:
    a, b = moving_runs
    for name in ("summary.json", "trace.csv", "events.csv", "rounds.csv", "inference.csv"):
        left, right = (a / name).read_text(), (b / name).read_text()
        if name == "summary.json":
            strip = lambda d: {k: v for k, v in d.items() if "wall" not in k}  # noqa: E731
            left_d, right_d = json.loads(left), json.loads(right)
            left_d["methods"] = {m: strip(v) for m, v in left_d["methods"].items()}
            right_d["methods"] = {m: strip(v) for m, v in right_d["methods"].items()}
            assert strip(left_d) == strip(right_d)
        else:
            assert left == right, name
