"""`nmoe-sim report`: the Chrome-trace timeline, the run and sweep reports, and refusals.

Run and sweep directories are written by hand with chosen numbers, so each expected timestamp
and each expected figure is known exactly.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nmoe_sim.cli import EXIT_BAD_INPUT, app
from nmoe_sim.report import ReportError, build_report
from nmoe_sim.report.build import MARKER
from nmoe_sim.report.figures import (
    DPI,
    SWEEP_FIGURES,
    _log_x,
    expert_load_figure,
    sweep_figure_name,
)
from nmoe_sim.report.timeline import chrome_trace_events, node_order
from nmoe_sim.sweep import FIGURES, INFERENCE_FIGURES
from nmoe_sim.telemetry.plots import gating_heatmap
from nmoe_sim.telemetry.schema import MetricRecord, QueryRecord, TransferRecord, columns, row
from nmoe_sim.telemetry.summary import (
    DatasetInfo,
    InferenceSummary,
    MethodSummary,
    PerClient,
    RunSummary,
    StageFigures,
    UpdateCounts,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TASKS = pd.DataFrame(
    [
        # method, node, task, t_start_s, t_end_s, host_wall_s, status
        ("fedavg", "c0", "fit_classifier", 0.5, 1.5, 0.25, "done"),
        ("fedavg", "c1", "fit_classifier", 0.5, 1.25, 0.2, "done"),
        ("nmoe/fedsc", "c0", "fit_encoder", 0.5, 2.0, 0.4, "done"),
        ("nmoe/fedsc", "c1", "fit_expert", 2.0, 2.5, 0.1, "done"),
        ("nmoe/fedsc/fedgate", "c1", "fit_gate", 3.125, 3.5, math.nan, "host_lost"),
    ],
    columns=["method", "node", "task", "t_start_s", "t_end_s", "host_wall_s", "status"],
)
TRACE = pd.DataFrame(
    [
        # method, t_start_s, t_end_s, src, dst, kind, stage, round, size_bytes, path, staleness
        ("fedavg", 0.0, 0.5, "server", "c0", "model_down", "fedavg", 0, 1000, "cloud>bs0>c0", None),
        ("fedavg", 0.0, 0.5, "server", "c1", "model_down", "fedavg", 0, 1000, "cloud>bs0>c1", None),
        ("fedavg", 1.5, 2.25, "c0", "server", "update_up", "fedavg", 0, 1000, "c0>bs0>cloud", 0),
        ("fedavg", 1.25, 2.0, "c1", "server", "update_up", "fedavg", 0, 1000, "c1>bs0>cloud", 0),
        ("nmoe/fedsc", 0.0, 0.5, "server", "c0", "model_down", "extractor", 0, 2000, "x", None),
        ("nmoe/fedsc", 2.0, 3.0, "c0", "server", "update_up", "extractor", 0, 2000, "x", 0),
        ("nmoe/fedsc/fedgate", 3.0, 3.125, "c0", "c1", "features", "gate", 0, 500, "c0>c1", None),
        ("nmoe/fedsc/fedgate", 3.5, 3.5, "c1", "server", "update_up", "gate", 1, 300, "c1>s", 0),
    ],
    columns=list(columns(TransferRecord)),
)
METRICS = pd.DataFrame(
    [
        ("fedavg", "fedavg", 1, 2.25, 0.1, 0.42, 1.2, 4000),
        ("nmoe/fedsc", "extractor", 1, 3.0, 0.2, None, 3.9, 4000),
        ("nmoe/fedsc", "expert", 0, 3.0, 0.3, None, 1.1, 4000),
        ("nmoe/fedsc/fedgate", "gate", 1, 3.5, 0.4, 0.55, 2.0, 4800),
    ],
    columns=list(columns(MetricRecord)),
)
INFERENCE = InferenceSummary(
    queries=4,
    accuracy=0.61,
    latency_mean_ms=24.25,
    latency_p50_ms=12.0,
    latency_p95_ms=30.0,
    latency_p99_ms=45.0,
    bytes_total=8192,
    bytes_per_query=2048,
    own_expert_only_fraction=0.25,
    expert_utilisation=[0.6, 0.4],
    expert_requests=[3, 2],
    deadline_misses=3,
    late_expert_answers=3,
    t_start_s=3.5,
    sim_time_s=0.5,
)


def _summary(inference: bool) -> dict[str, Any]:
    def method(acc: float, size: int, sim: float, served: bool = False) -> MethodSummary:
        return MethodSummary(
            accuracy_global=acc,
            accuracy_local=acc + 0.1,
            bytes_total=size,
            sim_time_s=sim,
            wall_time_s=1.0,
            stages={"fedavg": StageFigures(bytes=size, sim_time_s=sim)},
            updates=UpdateCounts(applied=2, dropped={}),
            per_client=PerClient(accuracy_global=[acc, acc], accuracy_local=[acc, acc]),
            inference=INFERENCE if served else None,
        )

    return RunSummary(
        scenario="hand",
        seed=1,
        dataset=DatasetInfo(name="synthetic", train=10, test=10),
        clients=2,
        partition={"scheme": "iid"},
        wall_time_s=2.0,
        methods={
            "fedavg": method(0.42, 4000, 2.25),
            "nmoe/fedsc/fedgate": method(0.55, 4800, 3.5, served=inference),
        },
    ).to_dict()


def make_run(root: Path, inference: bool = False) -> Path:
    run = root / "run"
    (run / "heatmaps").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(_summary(inference)))
    METRICS.to_csv(run / "metrics.csv", index=False)
    TRACE.to_csv(run / "trace.csv", index=False)
    TASKS.to_csv(run / "tasks.csv", index=False)
    pd.DataFrame({"client": [0, 1], "expert_0": [0.75, 0.5], "expert_1": [0.25, 0.5]}).to_csv(
        run / "heatmaps" / "nmoe_fedsc_fedgate.csv", index=False
    )
    if inference:
        queries = [
            # query, client, sample, arrival, done, latency, experts, answered, bytes, 3 flags
            QueryRecord(q, q % 2, q, t, t + ms / 1e3, ms, "0", "0", 2048, True, True, False)
            for q, (t, ms) in enumerate([(0.0, 10.0), (0.1, 12.0), (0.2, 30.0), (0.3, 45.0)])
        ]
        pd.DataFrame(
            [row("nmoe/fedsc/fedgate", r) for r in queries],
            columns=list(columns(QueryRecord)),
        ).to_csv(run / "inference.csv", index=False)
    return run


def make_sweep(root: Path) -> Path:
    sweep = root / "sweep"
    sweep.mkdir()
    rows = []
    for i, (bw, frac) in enumerate((b, f) for b in (1, 10, 100) for f in (0.0, 0.3)):
        for method, acc in (("fedavg", 0.5), ("nmoe/fedsc/fedgate", 0.6)):
            rows.append(
                {
                    "point": f"{i:03d}_bandwidth_mbps={bw}_fraction={frac}",
                    "network.bandwidth_mbps": bw,
                    "stragglers.fraction": frac,
                    "method": method,
                    "accuracy_global": acc - frac / 10,
                    "accuracy_local": acc,
                    "bytes_total": 1e6 * (i + 1),
                    "sim_time_s": 100.0 / bw,
                    "wall_time_s": 1.0,
                    "inference_latency_p99_ms": 50.0 / bw,
                    "inference_accuracy": acc,
                }
            )
    pd.DataFrame(rows).to_csv(sweep / "sweep.csv", index=False)
    return sweep


# --- timeline --------------------------------------------------------------------------------


def _tracks(events: list[dict[str, Any]]) -> dict[tuple[int, int], str]:
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}


def _processes(events: list[dict[str, Any]]) -> dict[str, int]:
    return {e["args"]["name"]: e["pid"] for e in events if e["name"] == "process_name"}


def test_timeline_known_task_and_transfer() -> None:
    events = chrome_trace_events(TASKS, TRACE)
    tracks, pids = _tracks(events), _processes(events)
    assert set(pids) == {"fedavg", "nmoe/fedsc", "nmoe/fedsc/fedgate"}

    (task,) = [
        e
        for e in events
        if e["ph"] == "X"
        and e["pid"] == pids["fedavg"]
        and e["name"] == "fit_classifier"
        and e["dur"] == 1_000_000.0
    ]
    assert task["ts"] == 500_000.0
    assert task["cat"] == "compute"
    assert tracks[(task["pid"], task["tid"])] == "c0"
    assert task["args"] == {"host_wall_s": 0.25, "status": "done"}

    (send,) = [e for e in events if e.get("name") == "send update_up → server" and e["ts"] == 1.5e6]
    assert (send["pid"], send["dur"], send["cat"]) == (pids["fedavg"], 750_000.0, "transfer")
    assert tracks[(send["pid"], send["tid"])] == "c0"  # the sender's track
    assert send["args"] == {
        "dst": "server",
        "size_bytes": 1000,
        "round": 0,
        "stage": "fedavg",
        "path": "c0>bs0>cloud",
        "staleness": 0,
    }

    (lost,) = [e for e in events if e.get("name") == "fit_gate"]
    assert (lost["ts"], lost["dur"]) == (3_125_000.0, 375_000.0)
    assert lost["args"] == {"host_wall_s": None, "status": "host_lost"}  # NaN -> null
    json.dumps(events, allow_nan=False)  # valid JSON: no NaN anywhere


def test_timeline_every_row_once_and_every_node_named() -> None:
    events = chrome_trace_events(TASKS, TRACE)
    tracks, pids = _tracks(events), _processes(events)
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == len(TASKS) + len(TRACE)

    def track(e: dict[str, Any]) -> str:
        return tracks[(e["pid"], e["tid"])].split(" (")[0]  # extra lanes: "c0 (2)"

    by_pid = {pid: name for name, pid in pids.items()}
    got_tasks = sorted(
        (by_pid[e["pid"]], track(e), e["name"], e["ts"]) for e in slices if e["cat"] == "compute"
    )
    want_tasks = sorted((r.method, r.node, r.task, r.t_start_s * 1e6) for r in TASKS.itertuples())
    assert got_tasks == want_tasks
    got_sends = sorted(
        (by_pid[e["pid"]], track(e), e["args"]["dst"], e["ts"], e["dur"])
        for e in slices
        if e["cat"] == "transfer"
    )
    want_sends = sorted(
        (r.method, r.src, r.dst, r.t_start_s * 1e6, (r.t_end_s - r.t_start_s) * 1e6)
        for r in TRACE.itertuples()
    )
    assert got_sends == want_sends

    for method, pid in pids.items():
        named = {name for (p, _), name in tracks.items() if p == pid}
        nodes = {
            *TASKS.node[TASKS.method == method],
            *TRACE.src[TRACE.method == method],
            *TRACE.dst[TRACE.method == method],
        }
        assert nodes <= named, (method, nodes - named)
    assert [e["ph"] for e in events[: len(events) - len(slices)]] == ["M"] * (
        len(events) - len(slices)
    )


def test_timeline_overlapping_sends_get_extra_track_and_every_track_nests() -> None:
    trace = pd.DataFrame(
        {
            "method": ["m"] * 3,
            "t_start_s": [0.0, 0.5, 0.25],
            "t_end_s": [1.0, 1.5, 0.75],  # 0.5-1.5 crosses 0-1; 0.25-0.75 nests in 0-1
            "src": ["server"] * 3,
            "dst": ["c0", "c1", "c2"],
            "kind": ["model_down"] * 3,
            "stage": ["fedavg"] * 3,
            "round": [0] * 3,
            "size_bytes": [1, 1, 1],
        }
    )
    events = chrome_trace_events(pd.DataFrame(), trace)
    tracks = _tracks(events)
    by_dst = {e["args"]["dst"]: tracks[(e["pid"], e["tid"])] for e in events if e["ph"] == "X"}
    assert by_dst == {"c0": "server", "c2": "server", "c1": "server (2)"}
    assert {"server", "c0", "c1", "c2"} <= set(tracks.values())
    for key in {(e["pid"], e["tid"]) for e in events if e["ph"] == "X"}:
        stack: list[float] = []
        on_track = sorted(
            (e for e in events if e["ph"] == "X" and (e["pid"], e["tid"]) == key),
            key=lambda e: (e["ts"], -e["dur"]),
        )
        for e in on_track:
            while stack and stack[-1] <= e["ts"]:
                stack.pop()
            assert not stack or e["ts"] + e["dur"] <= stack[-1], f"{e} crosses a slice"
            stack.append(e["ts"] + e["dur"])


def test_node_order_server_then_clients_numerically() -> None:
    assert node_order(["c10", "bs0", "c2", "server", "c0"]) == ["server", "c0", "c2", "c10", "bs0"]


# --- reports ---------------------------------------------------------------------------------


def _check_pngs_linked(report: Path) -> tuple[set[str], str]:
    html = (report / "index.html").read_text()
    pngs = {p.name for p in report.glob("*.png")}
    linked = set(re.findall(r'<img src="([^"]+)"', html))
    assert pngs and linked == pngs
    for name in pngs:
        assert (report / name).read_bytes()[:8] == PNG_MAGIC, name
    assert "http" not in " ".join(linked)  # self-contained: relative links only
    return pngs, html


def test_run_report_links_every_png_and_writes_timeline(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    report = build_report(run)
    assert report == run / "report"
    pngs, html = _check_pngs_linked(report)
    assert pngs == {"accuracy.png", "bytes.png", "gating.png", "utilisation.png"}
    assert html.count("<figcaption>") == len(pngs)
    assert "No inference results in this run" in html
    assert "<td>nmoe/fedsc/fedgate</td>" in html and "<td>55.00</td>" in html
    timeline = json.loads((report / "timeline.json").read_text())
    assert sum(e["ph"] == "X" for e in timeline["traceEvents"]) == len(TASKS) + len(TRACE)
    assert not list(tmp_path.glob("run/.report*"))  # no staging left behind

    # A second report replaces the first (the folder carries the marker)
    (report / "stale.png").write_bytes(PNG_MAGIC)
    assert (report / MARKER).is_file()
    build_report(run)
    assert not (report / "stale.png").exists()


def test_run_report_draws_inference_when_present(tmp_path: Path) -> None:
    run = make_run(tmp_path, inference=True)
    pngs, html = _check_pngs_linked(build_report(run, tmp_path / "elsewhere"))
    assert {"inference_latency_cdf.png", "inference_expert_load.png"} <= pngs
    assert "<td>45.00</td>" in html  # p99 in the inference table
    assert "No inference results" not in html
    assert 'href="../run/summary.json"' in html  # links back to the run from --out


def test_sweep_report_one_figure_per_figure_and_key(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path)
    pngs, html = _check_pngs_linked(build_report(sweep))
    keys = ("network.bandwidth_mbps", "stragglers.fraction")
    assert pngs == {sweep_figure_name(f, k) for f in SWEEP_FIGURES for k in keys}
    assert len(pngs) == 12
    assert "Logarithmic x axis" in html  # bandwidth spans 100x
    assert not (tmp_path / "sweep" / "report" / "timeline.json").exists()


def test_sweep_report_leaves_failed_points_out(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path)
    table = pd.read_csv(sweep / "sweep.csv").assign(status="ok", error="")
    failed = {"point": "006_bandwidth_mbps=1000_fraction=0.0", "status": "failed", "error": "boom"}
    table = pd.concat([table, pd.DataFrame([failed])], ignore_index=True)
    table.to_csv(sweep / "sweep.csv", index=False)
    pngs, _ = _check_pngs_linked(build_report(sweep))
    assert len(pngs) == 12  # the same figures as without the failed point


def test_log_axis_only_from_100x() -> None:
    assert _log_x([1, 10, 100], True)
    assert not _log_x([1, 10, 99], True)
    assert not _log_x([0, 10, 1000], True)
    assert not _log_x(["star", "mec"], False)


# --- refusals --------------------------------------------------------------------------------


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("case", ["missing", "empty-dir", "file"])
def test_bad_path_exits_2_without_traceback_and_writes_nothing(tmp_path: Path, case: str) -> None:
    target = tmp_path / "x"
    if case == "empty-dir":
        target.mkdir()
        (target / "notes.txt").write_text("hello")
    elif case == "file":
        target.write_text("not a run")
    before = _listing(tmp_path)
    result = CliRunner().invoke(app, ["report", str(target)])
    assert result.exit_code == EXIT_BAD_INPUT == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    stderr = " ".join(result.stderr.split())
    assert stderr.startswith("error:") and str(target) in stderr
    assert "summary.json" in stderr and "sweep.csv" in stderr
    assert _listing(tmp_path) == before


def test_foreign_out_folder_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(foreign)])
    assert result.exit_code == 2
    assert "not a report written by" in " ".join(result.stderr.split())
    assert _listing(foreign) == ["keep.txt"]
    assert not (run / "report").exists()
    with pytest.raises(ReportError):
        build_report(run, foreign)


def test_summary_of_another_shape_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    summary = _summary(False)
    del summary["methods"]["fedavg"]["per_client"]
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ReportError, match="not a run summary of this version"):
        build_report(run)


def test_csv_without_a_schema_column_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    TRACE.drop(columns=["path"]).to_csv(run / "trace.csv", index=False)
    with pytest.raises(ReportError, match="missing column"):
        build_report(run)


def test_sweep_figures_drawn_are_sweep_columns() -> None:
    made = {*FIGURES, *(f"inference_{f}" for f in INFERENCE_FIGURES)}
    assert set(SWEEP_FIGURES) <= made


def test_cli_report_on_a_real_tiny_run(tmp_path: Path) -> None:
    from nmoe_sim.engine import run_scenario
    from tests.test_engine import tiny_scenario

    run = tmp_path / "tiny"
    run_scenario(tiny_scenario(), run)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    pngs, _ = _check_pngs_linked(run / "report")
    assert {"accuracy.png", "bytes.png", "gating.png", "utilisation.png"} <= pngs
    events = json.loads((run / "report" / "timeline.json").read_text())["traceEvents"]
    rows = len(pd.read_csv(run / "tasks.csv")) + len(pd.read_csv(run / "trace.csv"))
    assert sum(e["ph"] == "X" for e in events) == rows


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]  # PNG signature, then the IHDR chunk: width, height
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_figures_of_many_clients_keep_a_bounded_canvas(tmp_path: Path) -> None:
    """A cell per client would make a 1,000-client heat map 500 inches (50,000 pixels) square;
    the canvas is capped at 14 inches high (15 wide, with the colour bar) at 110 dpi."""
    gating_heatmap(np.eye(1000), "many", tmp_path / "many.png")
    assert _png_size(tmp_path / "many.png") == (15 * 110, 14 * 110)
    gating_heatmap(np.eye(4), "few", tmp_path / "few.png")  # small runs keep a cell per client
    assert _png_size(tmp_path / "few.png") == (5 * 110, 4 * 110)
    expert_load_figure({"m": [0.001] * 1000}, {}, tmp_path / "load.png")
    assert _png_size(tmp_path / "load.png") == (24 * DPI, round(4.8 * DPI))


# --- an --out that cannot be written, and interruptions --------------------------------------


def _refused_out(result: Any, folder: Path) -> None:
    assert result.exit_code == EXIT_BAD_INPUT == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    stderr = " ".join(result.stderr.split())
    assert len(lines) == 1 and stderr.startswith("error:") and str(folder) in stderr, stderr


@pytest.mark.parametrize("case", ["under-a-file", "not-writable", "new-folders-then-not-writable"])
def test_out_that_cannot_be_written_exits_2_naming_it_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    run = make_run(tmp_path)
    if case == "under-a-file":
        (tmp_path / "afile").write_text("mine")
        out = tmp_path / "afile" / "report"
    else:
        out = tmp_path / ("a/b/report" if case.startswith("new") else "report")
        real_mkdir = Path.mkdir

        def no_write(self: Path, *args: Any, **kwargs: Any) -> None:
            if ".partial" in self.name:  # (as root, chmod would not stop the write)
                raise PermissionError(13, "Permission denied", str(self))
            real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", no_write)
    before = _listing(tmp_path)
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(out)])
    _refused_out(result, out)
    assert _listing(tmp_path) == before


def _earlier_report(tmp_path: Path) -> tuple[Path, Path]:
    run = make_run(tmp_path)
    out = tmp_path / "rep"
    out.mkdir()
    (out / MARKER).write_text("earlier")
    (out / "index.html").write_text("earlier report")
    return run, out


def test_interrupted_report_exits_130_keeps_the_earlier_one_and_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nmoe_sim.report import build as report_build

    def interrupted(*args: Any, **kwargs: Any) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(report_build, "_run_report", interrupted)
    run, out = _earlier_report(tmp_path)
    before = _listing(tmp_path)
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(out)])
    assert result.exit_code == 130, result.output
    assert "interrupted; no report written" in result.stderr
    assert _listing(tmp_path) == before
    assert (out / "index.html").read_text() == "earlier report"


def test_a_swap_cut_short_puts_the_earlier_report_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, out = _earlier_report(tmp_path)
    before = _listing(tmp_path)
    real_rename = Path.rename

    def cut(self: Path, target: Any) -> Path:
        if ".partial" in self.name:  # the new report's move into place
            raise KeyboardInterrupt
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", cut)
    with pytest.raises(KeyboardInterrupt):
        build_report(run, out)
    assert _listing(tmp_path) == before
    assert (out / "index.html").read_text() == "earlier report"


def test_ctrl_c_during_a_report_says_interrupted_and_exits_130(tmp_path: Path) -> None:
    """The real entry point and a real SIGINT, sent while the figures are drawn."""
    import signal
    import subprocess
    import sys

    run, out = _earlier_report(tmp_path)
    before = _listing(tmp_path)
    script = (
        "import os, signal, sys, time\n"
        "from nmoe_sim.report import build\n"
        "def drawing(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(30)\n"
        "build._run_report = drawing\n"
        "from nmoe_sim.cli import main\n"
        f"sys.argv = ['nmoe-sim', 'report', {str(run)!r}, '--out', {str(out)!r}]\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 128 + signal.SIGINT, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "interrupted; no report written" in proc.stderr
    assert _listing(tmp_path) == before
