"""LocalGate, the scheme added as one module plus one registry line: no gate crosses the
network, and each client's sessions run back to back on its own device."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from nmoe_sim.engine import run_scenario
from tests.test_engine import CLIENTS, ROUNDS, tiny_scenario

METHOD = "nmoe/fedce/localgate"


def test_localgate_sends_no_gate_and_runs_sessions_back_to_back(tmp_path: Path) -> None:
    scenario = tiny_scenario(methods=["nmoe/fedce/fedgate", METHOD])
    summary = run_scenario(scenario, tmp_path / "run")
    trace = pd.read_csv(tmp_path / "run" / "trace.csv")
    mine = trace[trace.method == METHOD]
    # Only the expert-output exchange every scheme pays: features out, outputs back, per pair.
    assert sorted(mine.kind.unique()) == ["expert_out", "features"]
    assert len(mine) == 2 * CLIENTS * (CLIENTS - 1)
    fedgate = trace[trace.method == "nmoe/fedce/fedgate"]
    assert {"model_down", "update_up"} <= set(fedgate.kind)

    tasks = pd.read_csv(tmp_path / "run" / "tasks.csv")
    fits = tasks[(tasks.method == METHOD) & (tasks.task == "fit_gate")]
    assert len(fits) == CLIENTS * ROUNDS
    for _, sessions in fits.groupby("node"):
        spans = sessions.sort_values("t_start_s")[["t_start_s", "t_end_s"]].to_numpy()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start == end  # the next session starts when the previous one ends
    m = summary["methods"][METHOD]
    assert m["stages"]["gate"]["sim_time_s"] > 0
    assert m["sim_time_s"] == fits.t_end_s.max()  # the stage ends with the last session
    # Update counts cover the lineage: stage 1's federated updates, none from stage 3.
    assert m["updates"] == {"applied": CLIENTS * ROUNDS, "dropped": {}}
    fed = summary["methods"]["nmoe/fedce/fedgate"]["updates"]
    assert fed == {"applied": 2 * CLIENTS * ROUNDS, "dropped": {}}

    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    gate_rows = metrics[(metrics.method == METHOD) & (metrics.stage == "gate")]
    assert gate_rows["round"].tolist() == [ROUNDS]
    assert 0.0 <= m["accuracy_global"] <= 1.0
