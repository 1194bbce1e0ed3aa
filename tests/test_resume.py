"""Interrupted runs and sweeps resume from their checkpoint to exactly the uninterrupted result;
what cannot be continued is refused with a message naming why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from nmoe_sim import checkpoint as ckpt
from nmoe_sim import engine
from nmoe_sim.checkpoint import ResumeRefused, checkpoint_dir, open_checkpoint
from nmoe_sim.cli import app
from nmoe_sim.config import Scenario, ScenarioError
from nmoe_sim.engine import run_scenario
from nmoe_sim.interrupt import RunInterrupted
from nmoe_sim.pipelines.finished import Finished
from nmoe_sim.pipelines.nmoe import NmoePipeline
from nmoe_sim.sweep import parse_grid, plan_sweep, run_sweep
from nmoe_sim.telemetry.output import OutputError
from tests.test_engine import tiny_scenario
from tests.test_sweep import TINY  # the sweep tests' two-method scenario

REPO = Path(__file__).resolve().parents[1]
CODE_FINGERPRINT = ckpt.code_fingerprint()  # the real one, before the fixture replaces it
# Saves, in order: local, fedavg, nmoe/fedce (stages 1-2), nmoe/fedce/rangate, nmoe/fedsc
# (stages 1-2), nmoe/fedsc/fedgate, nmoe/fedsc/rollgate, nmoe/fedsc/uniform.
METHODS = [
    "local",
    "fedavg",
    "nmoe/fedce/rangate",
    "nmoe/fedsc/fedgate",
    "nmoe/fedsc/rollgate",
    "nmoe/fedsc/uniform",
]
WALL_COLUMNS = {"metrics.csv": ["wall_time_s"], "tasks.csv": ["host_wall_s"]}


@pytest.fixture(autouse=True)
def same_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process editing the checkout mid-test must not read as a code change."""
    monkeypatch.setattr(ckpt, "code_fingerprint", lambda: "test")


def test_code_fingerprint_names_the_version_and_hashes_the_sources() -> None:
    import nmoe_sim

    assert CODE_FINGERPRINT.startswith(f"{nmoe_sim.__version__}+")
    assert len(CODE_FINGERPRINT.split("+")[1]) == 16


def scenario() -> Scenario:
    return tiny_scenario(methods=METHODS, inference={"enabled": True, "queries_per_client": 20})


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "base"
    run_scenario(scenario(), out)
    return out


def _no_wall(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_wall(v) for k, v in value.items() if "wall" not in k}
    return value


def assert_same_run(a: Path, b: Path) -> None:
    """Every file equal, host wall times aside."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        fa, fb = a / rel, b / rel
        if rel.name == "summary.json":
            assert _no_wall(json.loads(fa.read_text())) == _no_wall(json.loads(fb.read_text()))
        elif rel.suffix == ".parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(fa), pd.read_parquet(fb))
        elif str(rel) in WALL_COLUMNS:
            drop = WALL_COLUMNS[str(rel)]
            left, right = (pd.read_csv(f).drop(columns=drop) for f in (fa, fb))
            assert left.to_csv(index=False) == right.to_csv(index=False), rel
        else:
            assert fa.read_bytes() == fb.read_bytes(), rel


def interrupt_after(monkeypatch: pytest.MonkeyPatch, saves: int) -> None:
    """Ctrl-C right after the `saves`-th checkpoint save."""
    original = Finished._save
    count = 0

    def save(self: Finished) -> None:
        nonlocal count
        original(self)
        count += 1
        if count == saves:
            raise KeyboardInterrupt

    monkeypatch.setattr(Finished, "_save", save)


def interrupted_run(out: Path, saves: int, sc: Scenario | None = None) -> RunInterrupted:
    with pytest.MonkeyPatch.context() as mp:
        interrupt_after(mp, saves)
        with pytest.raises(RunInterrupted) as info:
            run_scenario(sc or scenario(), out)
    assert not out.exists()  # nothing in the final place
    assert (checkpoint_dir(out) / "progress.pkl").is_file()
    return info.value


@pytest.mark.parametrize(
    ("saves", "finished", "retrained"),
    [
        (2, 2, 2),  # after two baselines: both pipelines still to train
        (5, 3, 0),  # right after nmoe/fedsc's stages 1-2: restored, not trained again
        (6, 4, 0),  # a gating branch of a restored pipeline done, two to go
    ],
)
def test_resume_gives_the_uninterrupted_run(
    base: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    saves: int,
    finished: int,
    retrained: int,
) -> None:
    out = tmp_path / "run"
    stopped = interrupted_run(out, saves)
    assert (stopped.finished, stopped.total) == (finished, len(METHODS))
    assert stopped.signum == signal.SIGINT

    # The resume runs nothing that finished: count what it trains.
    trained: list[str] = []
    train_shared = NmoePipeline.train_shared

    def counting(self: NmoePipeline) -> None:
        trained.append(self.name)
        train_shared(self)

    monkeypatch.setattr(NmoePipeline, "train_shared", counting)
    for name in ("local", "fedavg"):
        monkeypatch.setitem(engine.BASELINE_RUNNERS, name, _must_not_run)
    run_scenario(scenario(), out, resume=True)
    assert len(trained) == retrained
    assert_same_run(base, out)
    assert not checkpoint_dir(out).exists()


def _must_not_run(ctx: Any) -> Any:
    raise AssertionError("a finished method ran again")


def test_resume_refuses_another_scenario_or_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    sc = tiny_scenario(methods=["local", "fedavg"])
    interrupted_run(out, 1, sc)
    changed = tiny_scenario(methods=["local", "fedavg"], seed=4)
    with pytest.raises(ResumeRefused, match=r"seed: 3 -> 4"):
        run_scenario(changed, out, resume=True)
    monkeypatch.setattr(ckpt, "code_fingerprint", lambda: "0.0.0+other")
    with pytest.raises(ResumeRefused, match=r"the code changed since the checkpoint"):
        run_scenario(sc, out, resume=True)
    # Without --resume the checkpoint is not overwritten: the user is told how to go on.
    with pytest.raises(OutputError, match="--resume, or remove that folder"):
        run_scenario(sc, out)


def test_resume_without_checkpoint_or_of_a_finished_run(tmp_path: Path) -> None:
    sc = tiny_scenario(methods=["local"])
    with pytest.raises(OutputError, match="no checkpoint to resume"):
        run_scenario(sc, tmp_path / "none", resume=True)
    run_scenario(sc, tmp_path / "done")
    with pytest.raises(OutputError, match="already complete"):
        run_scenario(sc, tmp_path / "done", resume=True)


def test_a_run_that_fails_before_saving_anything_leaves_no_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_data(scenario: Scenario) -> Any:
        raise ScenarioError("dataset/partition settings cannot be met: (mocked)")

    monkeypatch.setattr(engine, "build_population", no_data)
    out = tmp_path / "run"
    with pytest.raises(ScenarioError, match="mocked"):
        run_scenario(tiny_scenario(methods=["local"]), out)
    assert list(tmp_path.iterdir()) == []


def test_a_second_run_on_the_same_out_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    sc = tiny_scenario(methods=["local"])
    holder = open_checkpoint(out, sc.model_dump(mode="json"), resume=False)
    try:
        with pytest.raises(OutputError, match=r"another run is writing .* \(pid \d+\)"):
            run_scenario(sc, out)
        with pytest.raises(OutputError, match="another run is writing"):
            run_scenario(sc, out, resume=True)
    finally:
        holder.release()  # as when its process dies: the kernel drops the lock
    assert run_scenario(sc, out, resume=True)["methods"]["local"]


def test_sigterm_ends_a_cli_run_with_143_and_the_resume_command(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(scenario().model_dump(mode="json")))  # JSON is YAML
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "run", str(path), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # The checkout first, then any path this process was given (where its packages may be).
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.getenv("PYTHONPATH", "")])},
    )
    deadline = time.monotonic() + 60
    while not (checkpoint_dir(out) / "progress.pkl").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the run saved nothing within 60 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert f"resume with: nmoe-sim run {path} --out {out} --resume" in stderr
    assert "interrupted: finished 1 of 6 methods" in stderr
    assert not out.exists() and (checkpoint_dir(out) / "manifest.json").is_file()


def test_a_failed_sweep_point_is_recorded_and_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    out = tmp_path / "sweep"
    original = Finished.method

    def fail_seed_2(self: Finished, name: str, result: Any) -> None:
        original(self, name, result)  # `local` is saved: the point resumes from there
        if name == "local" and _seed(self) == 2:
            raise RuntimeError("boom\non two lines")

    monkeypatch.setattr(Finished, "method", fail_seed_2)
    args = ["sweep", str(path), "--grid", "seed=1,2,3", "--out", str(out), "--jobs", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    stderr = " ".join(result.stderr.split())
    assert "1 of 3 sweep points failed (001_seed=2;" in stderr
    assert "--resume" in stderr
    table = pd.read_csv(out / "sweep.csv", keep_default_na=False)
    assert list(table.columns[-2:]) == ["status", "error"]
    assert list(table["status"]) == ["ok", "ok", "failed", "ok", "ok"]
    failed = table[table["status"] == "failed"].iloc[0]
    assert failed["error"] == "RuntimeError: boom on two lines"
    # The successful rows are what a sweep without the failure writes for those points.
    ok = table[table["status"] == "ok"].drop(columns=["status", "error"])
    assert list(ok.columns) == ["point", "seed", "method", *ok.columns[3:]]
    assert ok["bytes_total"].str.isdigit().all()  # integers stay integers beside the failure

    # Resume: the complete points are not run; the failed one continues from its checkpoint.
    monkeypatch.setattr(Finished, "method", original)
    ran: list[tuple[int, str]] = []
    for name in ("local", "fedavg"):
        runner = engine.BASELINE_RUNNERS[name]
        monkeypatch.setitem(
            engine.BASELINE_RUNNERS,
            name,
            lambda ctx, runner=runner, name=name: (
                ran.append((ctx.scenario.seed, name)) or runner(ctx)
            ),
        )
    result = CliRunner().invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert ran == [(2, "fedavg")]
    table = pd.read_csv(out / "sweep.csv")
    assert list(table["status"]) == ["ok"] * 6
    # Resuming a finished sweep runs nothing.
    points = plan_sweep(path, [parse_grid("seed=1,2,3")], [], None)
    ran.clear()
    assert len(run_sweep(points, out, jobs=1, resume=True)) == 6
    assert ran == []


def _seed(finished: Finished) -> int:
    """The seed of the point a Finished belongs to (from its checkpoint's manifest)."""
    assert finished.checkpoint is not None
    manifest = json.loads((finished.checkpoint.folder / "manifest.json").read_text())
    return int(manifest["scenario"]["seed"])
