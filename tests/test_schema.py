"""The one schema: CSV columns come from the record dataclasses, summary.json from its model,
and the CLI's light commands load neither torch nor matplotlib."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pandas as pd
import pytest

from nmoe_sim.telemetry.records import Recorder
from nmoe_sim.telemetry.schema import (
    RUN_TABLES,
    EventRecord,
    QueryRecord,
    RoundRecord,
    TaskRecord,
    TransferRecord,
    UpdateRecord,
    columns,
)
from nmoe_sim.telemetry.summary import (
    DatasetInfo,
    InferenceSummary,
    MethodSummary,
    PerClient,
    RunSummary,
    StageFigures,
    UpdateCounts,
)
from nmoe_sim.telemetry.writer import write_run

ROOT = Path(__file__).resolve().parents[1]


def _one_of_each() -> Recorder:
    recorder = Recorder()
    log = recorder.method("fedavg")
    log.record_transfer(TransferRecord(0.0, 1.0, "server", "c0", "model_down", "fedavg", 0, 8))
    log.record_update(UpdateRecord(0, "fedavg", 0, 0.0, 2.0, 0, "applied"))
    log.record_round(RoundRecord("fedavg", 0, 0.0, 2.0, 1, 1, "all"))
    log.record_task(TaskRecord("c0", "fit", 1.0, 2.0, 0.1, "done"))
    recorder.metric(log, "fedavg", 1, 2.0, 0.5, 1.0)
    query = QueryRecord(0, 0, 3, 2.0, 2.5, 500.0, "0", "0", 0, True, True, False)
    recorder.record_queries("fedavg", [query])
    recorder.record_events("fedavg", [EventRecord(1.5, "handover", "c0", "bs0", "bs1")])
    return recorder


def test_columns_are_method_then_the_record_fields() -> None:
    for record_type in RUN_TABLES.values():
        assert columns(record_type) == ("method", *(f.name for f in fields(record_type)))


def test_every_csv_the_writer_writes_has_the_schema_columns(tmp_path: Path) -> None:
    recorder = _one_of_each()
    out = write_run(
        tmp_path / "run",
        config={},
        summary={},
        recorder=recorder,
        partition=pd.DataFrame({"client": [0]}),
        heatmaps={},
        plots=False,
    )
    written = {p.name for p in out.glob("*.csv")} - {"partition.csv"}
    assert written == set(RUN_TABLES)
    for name, record_type in RUN_TABLES.items():
        frame = pd.read_csv(out / name)
        assert tuple(frame.columns) == columns(record_type), name
        assert len(frame) == 1, name
    assert tuple(pd.read_parquet(out / "trace.parquet").columns) == columns(TransferRecord)


def _summary(served: bool) -> RunSummary:
    inference = InferenceSummary(
        queries=2,
        accuracy=0.5,
        latency_mean_ms=3.0,
        latency_p50_ms=3.0,
        latency_p95_ms=3.9,
        latency_p99_ms=3.98,
        bytes_total=208,
        bytes_per_query=104.0,
        own_expert_only_fraction=0.5,
        expert_utilisation=[0.25, 0.0],
        expert_requests=[2, 1],
        deadline_misses=0,
        late_expert_answers=0,
        t_start_s=4.0,
        sim_time_s=0.5,
    )
    method = MethodSummary(
        accuracy_global=0.75,
        accuracy_local=math.nan,  # an unscored figure stays NaN through JSON
        bytes_total=416,
        sim_time_s=4.0,
        wall_time_s=1.5,
        stages={"extractor": StageFigures(400, 3.0), "gate": StageFigures(16, 0.0)},
        updates=UpdateCounts(applied=3, dropped={"dropout": 1, "late": 2}),
        per_client=PerClient(accuracy_global=[0.7, 0.8], accuracy_local=[0.6, 0.9]),
        inference=inference if served else None,
        handovers=3,
    )
    return RunSummary(
        scenario="hand",
        seed=7,
        dataset=DatasetInfo(name="synthetic", train=20, test=10),
        clients=2,
        partition={"scheme": "dirichlet", "alpha": 0.5},
        wall_time_s=9.0,
        methods={"nmoe/fedsc/fedgate": method, "local": _without_inference(method)},
    )


def _without_inference(m: MethodSummary) -> MethodSummary:
    return MethodSummary(**{**vars(m), "inference": None})


@pytest.mark.parametrize("served", [True, False])
def test_summary_round_trips_through_json(served: bool) -> None:
    summary = _summary(served)
    text = json.dumps(summary.to_dict(), indent=2)
    back = RunSummary.from_dict(json.loads(text))
    assert json.dumps(back.to_dict(), indent=2) == text  # same keys, order and values
    assert back.methods["local"].inference is None
    assert "inference" not in json.loads(text)["methods"]["local"]
    assert (back.methods["nmoe/fedsc/fedgate"].inference is not None) == served
    assert back.methods["nmoe/fedsc/fedgate"].handovers == 3


def test_handovers_are_left_out_where_nothing_moves() -> None:
    still = replace(_summary(False).methods["local"], handovers=None)
    assert "handovers" not in still.to_dict()
    assert MethodSummary.from_dict(still.to_dict()).handovers is None


def test_summary_keys_are_the_model_fields_in_order() -> None:
    d = _summary(True).to_dict()
    assert list(d) == [f.name for f in fields(RunSummary)]
    assert list(d["methods"]["nmoe/fedsc/fedgate"]) == [f.name for f in fields(MethodSummary)]
    gate = d["methods"]["nmoe/fedsc/fedgate"]
    assert list(gate["inference"]) == [f.name for f in fields(InferenceSummary)]


@pytest.mark.parametrize("broken", ["missing", "unknown"])
def test_summary_of_another_shape_is_refused(broken: str) -> None:
    d = _summary(True).to_dict()
    method = d["methods"]["local"]
    if broken == "missing":
        del method["updates"]
    else:
        method["bytes"] = 1
    with pytest.raises((KeyError, TypeError)):
        RunSummary.from_dict(d)


# --- a fast CLI ------------------------------------------------------------------------------

HEAVY = ("torch", "matplotlib", "pandas")


def _loaded_after(code: str) -> list[str]:
    """The heavy modules in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_importing_the_cli_loads_no_torch_matplotlib_or_pandas() -> None:
    assert _loaded_after("import nmoe_sim.cli") == []


def test_validate_loads_no_torch_matplotlib_or_pandas() -> None:
    code = (
        "from typer.testing import CliRunner\n"
        "from nmoe_sim.cli import app\n"
        "result = CliRunner().invoke(app, ['validate', 'scenarios/smoke.yaml'])\n"
        "assert result.exit_code == 0, result.output\n"
    )
    assert _loaded_after(code) == []
