"""End-to-end runs on the synthetic set: every figure checked against what it must equal."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nmoe_sim.config import Scenario
from nmoe_sim.engine import build_population, model_spec, run_scenario
from nmoe_sim.learning import evaluate
from nmoe_sim.methods import PAPER_METHODS
from nmoe_sim.models.spec import TRAIN_FLOPS_FACTOR
from nmoe_sim.telemetry.output import OutputError

CLIENTS = 4
ROUNDS = 2
CLIENT_GFLOPS = 5.0


def tiny_scenario(**overrides: object) -> Scenario:
    raw: dict = {
        "name": "tiny",
        "seed": 3,
        "dataset": {"name": "synthetic", "train_samples": 800, "test_samples": 400},
        "partition": {"scheme": "dirichlet", "alpha": 0.5, "test_samples_per_client": 100},
        "clients": {"count": CLIENTS},
        "model": {"feature_dim": 16, "expert_hidden": 16, "gate_hidden": 8, "projection_dim": 8},
        "stages": {
            "extractor": {"rounds": ROUNDS, "local_epochs": 1},
            "expert": {"epochs": 2},
            "gate": {"rounds": ROUNDS, "local_epochs": 1, "top_k": 2},
        },
        "baselines": {
            "local": {"epochs": 2},
            "fedavg": {"rounds": ROUNDS, "local_epochs": 1},
            "centralized": {"epochs": 4},
        },
        "devices": {"client_gflops": CLIENT_GFLOPS, "server_gflops": 100.0},
        "runtime": {"device": "cpu", "torch_threads": 1},
        "output": {"plots": False},
    }
    raw.update(overrides)
    return Scenario.model_validate(raw)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, Path, dict]:
    scenario = tiny_scenario()
    out = tmp_path_factory.mktemp("runs") / "tiny"
    summary = run_scenario(scenario, out)
    return scenario, out, summary


def _tensor_bytes(state: dict) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def test_run_directory_has_every_file(run: tuple[Scenario, Path, dict]) -> None:
    _, out, summary = run
    for name in (
        "config.yaml",
        "summary.json",
        "metrics.csv",
        "trace.csv",
        "trace.parquet",
        "partition.csv",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "summary.json").read_text()) == summary
    assert list(summary["methods"]) == list(PAPER_METHODS)
    for m in PAPER_METHODS:
        if m.startswith("nmoe/"):
            heat = pd.read_csv(out / "heatmaps" / f"{m.replace('/', '_')}.csv")
            assert heat.shape == (CLIENTS, CLIENTS + 1)
            assert heat.drop(columns="client").sum(axis=1).round(6).eq(1.0).all()
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["method"]) >= {"fedavg", "centralized", "nmoe/fedsc", "nmoe/fedce/fedgate"}


def test_accuracies_are_fractions_and_methods_learn(run: tuple[Scenario, Path, dict]) -> None:
    _, _, summary = run
    for name, m in summary["methods"].items():
        assert 0.0 <= m["accuracy_global"] <= 1.0, name
        assert 0.0 <= m["accuracy_local"] <= 1.0, name
    # Four epochs on the synthetic set: well above chance (10 %), far from converged.
    assert summary["methods"]["centralized"]["accuracy_global"] > 0.25


def test_bytes_total_is_the_sum_of_the_trace(run: tuple[Scenario, Path, dict]) -> None:
    _, out, summary = run
    trace = pd.read_csv(out / "trace.csv")
    for name, m in summary["methods"].items():
        lineage = {name, "/".join(name.split("/")[:2])} if name.startswith("nmoe/") else {name}
        assert m["bytes_total"] == trace.loc[trace["method"].isin(lineage), "size_bytes"].sum()
        assert sum(s["bytes"] for s in m["stages"].values()) == m["bytes_total"]


def test_fedavg_bytes_and_time_match_the_analytic_values(run: tuple[Scenario, Path, dict]) -> None:
    scenario, _, summary = run
    population = build_population(scenario)
    spec = model_spec(scenario, population.dataset)
    model_bytes = _tensor_bytes(spec.build_classifier().state_dict())
    # Every round each client downloads and uploads the model once; then one final broadcast.
    assert summary["methods"]["fedavg"]["bytes_total"] == (2 * ROUNDS + 1) * CLIENTS * model_bytes
    # Ideal network: a round lasts as long as the slowest client's local epoch.
    per_sample = TRAIN_FLOPS_FACTOR * spec.forward_flops("classifier")
    slowest = max(len(p) for p in population.train_parts) * per_sample / (CLIENT_GFLOPS * 1e9)
    assert summary["methods"]["fedavg"]["sim_time_s"] == pytest.approx(ROUNDS * slowest)
    # Local training: two epochs on each client, all in parallel, nothing sent.
    assert summary["methods"]["local"]["sim_time_s"] == pytest.approx(2 * slowest)
    assert summary["methods"]["local"]["bytes_total"] == 0


def test_centralized_uploads_exactly_the_raw_data(run: tuple[Scenario, Path, dict]) -> None:
    scenario, _, summary = run
    ds = build_population(scenario).dataset
    per_sample = ds.train_x[0].numel() * 4 + 8  # float32 image + int64 label
    assert summary["methods"]["centralized"]["bytes_total"] == ds.train_y.numel() * per_sample


def test_gate_stage_traffic(run: tuple[Scenario, Path, dict]) -> None:
    scenario, out, summary = run
    population = build_population(scenario)
    spec = model_spec(scenario, population.dataset)
    trace = pd.read_csv(out / "trace.csv")
    n_train = sum(len(p) for p in population.train_parts)
    for name in ("nmoe/fedsc/fedgate", "nmoe/fedsc/rollgate", "nmoe/fedsc/rangate"):
        rows = trace[trace["method"] == name]
        # Every sample's features go to each of the other clients' experts and come back as
        # class probabilities.
        feats = rows.loc[rows["kind"] == "features", "size_bytes"].sum()
        outs = rows.loc[rows["kind"] == "expert_out", "size_bytes"].sum()
        assert feats == n_train * (CLIENTS - 1) * spec.feature_dim * 4
        assert outs == n_train * (CLIENTS - 1) * spec.num_classes * 4
    gate = spec.build_gate().state_dict()
    trunk = _tensor_bytes({k: v for k, v in gate.items() if k.startswith("trunk.")})
    fedgate = trace[(trace["method"] == "nmoe/fedsc/fedgate") & (trace["stage"] == "gate")]
    shared = fedgate[fedgate["kind"].isin(["model_down", "update_up"])]
    assert (shared["size_bytes"] == trunk).all()
    assert len(shared) == (2 * ROUNDS + 1) * CLIENTS
    roll = trace[(trace["method"] == "nmoe/fedsc/rollgate") & (trace["kind"] == "gate_pass")]
    assert len(roll) == ROUNDS * CLIENTS - 1  # the ring's first holder starts the gate
    assert (roll["size_bytes"] == _tensor_bytes(gate)).all()
    # Routing references train no gate: their bytes are stages 1-2 only.
    fedsc_prefix = trace.loc[trace["method"] == "nmoe/fedsc", "size_bytes"].sum()
    assert summary["methods"]["nmoe/fedsc/uniform"]["bytes_total"] == fedsc_prefix


def test_gating_branches_start_where_stages_one_and_two_end(
    run: tuple[Scenario, Path, dict],
) -> None:
    _, out, summary = run
    trace = pd.read_csv(out / "trace.csv")
    prefix = summary["methods"]["nmoe/fedce/own_expert"]["sim_time_s"]
    assert prefix > 0
    for name in ("nmoe/fedce/fedgate", "nmoe/fedce/rollgate", "nmoe/fedce/rangate"):
        rows = trace[trace["method"] == name]
        assert rows["t_start_s"].min() >= prefix - 1e-9
        assert summary["methods"][name]["sim_time_s"] > prefix


def test_last_gate_evaluation_is_the_final_accuracy(run: tuple[Scenario, Path, dict]) -> None:
    """The learning curve ends at the summary's number: FedGate's rounds are scored with the
    global trunk under each client's own output layer, which is what clients keep."""
    _, out, summary = run
    metrics = pd.read_csv(out / "metrics.csv")
    for m in ("nmoe/fedce/fedgate", "nmoe/fedsc/fedgate", "nmoe/fedsc/rollgate"):
        last = metrics[metrics["method"] == m].sort_values("round")["accuracy"].iloc[-1]
        assert last == pytest.approx(summary["methods"][m]["accuracy_global"], abs=1e-9), m


def test_own_expert_heatmap_is_the_identity(run: tuple[Scenario, Path, dict]) -> None:
    _, out, _ = run
    heat = pd.read_csv(out / "heatmaps" / "nmoe_fedsc_own_expert.csv").drop(columns="client")
    for i in range(CLIENTS):
        assert heat.iloc[i, i] == 1.0
        assert heat.iloc[i].sum() == 1.0


def test_same_seed_gives_identical_trace_and_accuracies(
    run: tuple[Scenario, Path, dict], tmp_path: Path
) -> None:
    scenario, out, summary = run
    again = run_scenario(scenario, tmp_path / "again")
    assert (tmp_path / "again" / "trace.csv").read_bytes() == (out / "trace.csv").read_bytes()
    for name, m in summary["methods"].items():
        assert again["methods"][name]["accuracy_global"] == m["accuracy_global"], name


def test_existing_output_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    with pytest.raises(OutputError, match="already exists"):
        run_scenario(tiny_scenario(methods=["local"]), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no staging folder left


def test_compare_runs_sees_every_change_but_wall_time(
    run: tuple[Scenario, Path, dict], tmp_path: Path
) -> None:
    """benchmarks/compare_runs.py, the same-seed check for refactors."""
    import shutil

    from benchmarks.compare_runs import differences

    _, out, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert differences(out, copy) == []
    tasks = pd.read_csv(copy / "tasks.csv")
    tasks["host_wall_s"] += 1.0  # host time is not a result
    tasks.to_csv(copy / "tasks.csv", index=False)
    summary = json.loads((copy / "summary.json").read_text())
    summary["wall_time_s"] += 1.0
    (copy / "summary.json").write_text(json.dumps(summary))
    assert differences(out, copy) == []
    trace = pd.read_csv(copy / "trace.csv")
    trace.loc[0, "size_bytes"] += 1
    trace.to_csv(copy / "trace.csv", index=False)
    summary["seed"] += 1
    (copy / "summary.json").write_text(json.dumps(summary))
    assert differences(out, copy) == ["summary.json", "trace.csv"]


def test_evaluate_every_scores_those_rounds_and_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5 rounds scored every 2: after rounds 2, 4 and 5 (the last), and the final accuracy is
    the last row's, as when every round is scored. The final model is the last round's, so it
    costs no fourth pass over the test set."""
    passes = []
    real_predict = evaluate.predict
    monkeypatch.setattr(
        evaluate, "predict", lambda *a, **k: passes.append(1) or real_predict(*a, **k)
    )
    five_rounds = {"methods": ["fedavg"], "baselines": {"fedavg": {"rounds": 5}}}
    scenario = tiny_scenario(**five_rounds, federation={"evaluate_every": 2})
    summary = run_scenario(scenario, tmp_path / "every2")
    assert len(passes) == 3
    # Python's float() reads a written float back exactly; pandas 2's own parser can be 1 ulp off.
    exact = {"converters": {"accuracy": float}}
    metrics = pd.read_csv(tmp_path / "every2" / "metrics.csv", **exact)
    assert metrics["round"].tolist() == [2, 4, 5]
    every = run_scenario(tiny_scenario(**five_rounds), tmp_path / "e1")
    all_rows = pd.read_csv(tmp_path / "e1" / "metrics.csv", **exact).set_index("round")
    # Scoring is measurement only: the scored rounds are the same numbers either way.
    assert metrics.set_index("round")["accuracy"].equals(all_rows.loc[[2, 4, 5], "accuracy"])
    final = summary["methods"]["fedavg"]["accuracy_global"]
    assert final == every["methods"]["fedavg"]["accuracy_global"] == metrics["accuracy"].iloc[-1]
