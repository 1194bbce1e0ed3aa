"""Whole runs over simulated networks: times against analytic values, bytes against the trace."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nmoe_sim.config import Scenario
from nmoe_sim.engine import build_population, model_spec, run_scenario
from nmoe_sim.models.spec import TRAIN_FLOPS_FACTOR

CLIENTS = 4


def scenario(**sections: object) -> Scenario:
    raw: dict = {
        "name": "net",
        "seed": 5,
        "methods": ["fedavg"],
        "dataset": {"name": "synthetic", "train_samples": 400, "test_samples": 100},
        "partition": {"scheme": "iid", "test_samples_per_client": 25},
        "clients": {"count": CLIENTS},
        "model": {"feature_dim": 8, "expert_hidden": 8, "gate_hidden": 4, "projection_dim": 4},
        "baselines": {"fedavg": {"rounds": 2}},
        "devices": {"client_gflops": 5.0},
        "runtime": {"device": "cpu", "torch_threads": 1},
        "output": {"plots": False},
    }
    raw.update(sections)
    return Scenario.model_validate(raw)


def model_bytes_and_compute_s(sc: Scenario) -> tuple[int, float]:
    """The classifier's bytes and the slowest client's modelled local-epoch time."""
    population = build_population(sc)
    spec = model_spec(sc, population.dataset)
    model_bytes = sum(
        t.numel() * t.element_size() for t in spec.build_classifier().state_dict().values()
    )
    per_sample = TRAIN_FLOPS_FACTOR * spec.forward_flops("classifier")
    compute = max(len(p) for p in population.train_parts) * per_sample / 5e9
    return model_bytes, compute


def test_fedavg_round_time_on_a_star_is_download_compute_upload(tmp_path: Path) -> None:
    bw_mbps, latency_ms = 8.0, 30.0
    sc = scenario(
        network={
            "topology": "star",
            "bandwidth_mbps": bw_mbps,
            "latency_ms": latency_ms,
            "transport": "fluid",
        }
    )
    summary = run_scenario(sc, tmp_path / "run")
    model_bytes, compute = model_bytes_and_compute_s(sc)
    # Each client has its own link to the hub: no sharing, so a transfer takes latency + size/bw.
    transfer = latency_ms / 1e3 + 8 * model_bytes / (bw_mbps * 1e6)
    # Two rounds of download + slowest compute + upload, then the final broadcast.
    expected = 2 * (transfer + compute + transfer) + transfer
    assert summary["methods"]["fedavg"]["sim_time_s"] == pytest.approx(expected, rel=1e-9)
    trace = pd.read_csv(tmp_path / "run" / "trace.csv")
    durations = trace["t_end_s"] - trace["t_start_s"]
    assert durations.to_numpy() == pytest.approx([transfer] * len(trace), rel=1e-9)
    assert set(trace["path"]) == {f"cloud>c{i}" for i in range(CLIENTS)} | {
        f"c{i}>cloud" for i in range(CLIENTS)
    }


def test_fedavg_over_tcp_pays_headers_and_one_handshake_per_client(tmp_path: Path) -> None:
    # A path whose window of 10 packets outlasts a round trip (1 ms links at 8 Mbps: 15 KB take
    # 15 ms, the round trip 3.6 ms), so no slow start: a transfer is latency + wire bits / bw, and
    # each client's connection to the hub, opened by the first download, adds one handshake.
    bw_mbps, latency_ms = 8.0, 1.0
    sc = scenario(network={"topology": "star", "bandwidth_mbps": bw_mbps, "latency_ms": latency_ms})
    assert sc.network.transport == "tcp" and sc.network.tcp.connections == "persistent"
    summary = run_scenario(sc, tmp_path / "run")
    model_bytes, compute = model_bytes_and_compute_s(sc)
    bps, lat = bw_mbps * 1e6, latency_ms / 1e3
    mss, overhead = 1500 - 52, 52 + 14  # Linux defaults: IPv4 + TCP + timestamps, Ethernet
    wire = model_bytes + -(-model_bytes // mss) * overhead
    transfer = lat + 8 * wire / bps
    handshake = 2 * lat + 2 * 8 * overhead / bps  # SYN there, SYN-ACK back
    first = handshake + lat + 8 * (wire + overhead) / bps  # the third ACK goes ahead of the data
    expected = first + compute + transfer + (transfer + compute + transfer) + transfer
    assert summary["methods"]["fedavg"]["sim_time_s"] == pytest.approx(expected, rel=1e-9)
    trace = pd.read_csv(tmp_path / "run" / "trace.csv")
    durations = (trace["t_end_s"] - trace["t_start_s"]).to_numpy()
    first_downloads = trace.index < CLIENTS
    assert durations[first_downloads] == pytest.approx([first] * CLIENTS, rel=1e-9)
    assert durations[~first_downloads] == pytest.approx(
        [transfer] * (len(trace) - CLIENTS), rel=1e-9
    )
    assert (trace["size_bytes"] == model_bytes).all()  # the trace keeps the payload


def test_lower_bandwidth_same_bytes_more_time(tmp_path: Path) -> None:
    methods = ["fedavg", "centralized", "nmoe/fedce/fedgate", "nmoe/fedce/rollgate"]
    runs = {}
    for bw in (2.0, 20.0):
        sc = scenario(
            methods=methods,
            network={"topology": "mec", "cells": 2, "bandwidth_mbps": bw},
            stages={
                "extractor": {"rounds": 1},
                "expert": {"epochs": 1, "cross_fit_folds": 1},
                "gate": {"rounds": 1},
            },
            baselines={"fedavg": {"rounds": 1}, "centralized": {"epochs": 1}},
        )
        runs[bw] = run_scenario(sc, tmp_path / f"bw{bw}")["methods"]
    for m in methods:
        assert runs[2.0][m]["bytes_total"] == runs[20.0][m]["bytes_total"], m
        assert runs[2.0][m]["sim_time_s"] > runs[20.0][m]["sim_time_s"], m


def test_same_seed_same_trace_on_a_shared_network(tmp_path: Path) -> None:
    net = {"topology": "mec", "cells": 2, "bandwidth_mbps": 5, "d2d_mbps": 10}
    sc = scenario(
        methods=["fedavg", "nmoe/fedce/rangate"],
        network=net,
        stragglers={"fraction": 0.5, "slowdown": 3, "dropout": 0.2},
        stages={"extractor": {"rounds": 1}, "expert": {"epochs": 1}, "gate": {"rounds": 1}},
    )
    run_scenario(sc, tmp_path / "a")
    run_scenario(sc, tmp_path / "b")
    for name in ("trace.csv", "updates.csv", "rounds.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_stragglers_slow_sync_more_than_fedbuff(tmp_path: Path) -> None:
    def sim_time(mode: str, fraction: float) -> float:
        sc = scenario(
            baselines={"fedavg": {"rounds": 4}},
            stragglers={"fraction": fraction, "slowdown": 8.0},
            # buffer_size and concurrency do nothing in sync mode, where they are refused.
            federation={"mode": "sync"}
            if mode == "sync"
            else {"mode": mode, "buffer_size": 2, "concurrency": CLIENTS},
        )
        out = tmp_path / f"{mode}-{fraction}"
        return run_scenario(sc, out)["methods"]["fedavg"]["sim_time_s"]

    sync_growth = sim_time("sync", 0.25) / sim_time("sync", 0.0)
    buff_growth = sim_time("fedbuff", 0.25) / sim_time("fedbuff", 0.0)
    # Every sync round waits for the straggler (8x slower); FedBuff keeps aggregating the others.
    assert sync_growth == pytest.approx(8.0, rel=0.05)
    assert buff_growth < sync_growth
