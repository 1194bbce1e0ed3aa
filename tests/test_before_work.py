"""`nmoe-sim run` refuses what it can refuse before its first task, and nothing after it: work
is never thrown away by a check made at the end (issue 26: `--out .` ran to the end, then
refused the folder its own checkpoint had filled)."""

from __future__ import annotations

import ast
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from nmoe_sim import checkpoint as ckpt
from nmoe_sim import engine
from nmoe_sim.checkpoint import checkpoint_dir
from nmoe_sim.cli import app
from nmoe_sim.config import Scenario
from nmoe_sim.interrupt import RunInterrupted
from tests.test_sweep import TINY  # two methods on a few hundred synthetic images

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "nmoe_sim"


@pytest.fixture(autouse=True)
def same_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process editing the checkout mid-test must not read as a code change."""
    monkeypatch.setattr(ckpt, "code_fingerprint", lambda: "test")


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records that the run reached its first task (engine.run_methods)."""
    reached: list[str] = []
    original = engine.run_methods

    def spy(*args: Any, **kwargs: Any) -> Any:
        reached.append("run_methods")
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "run_methods", spy)
    return reached


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, ["run", *args])


# --- --out . ------------------------------------------------------------------------------------


def test_out_dot_in_an_empty_folder_writes_the_run_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(TINY)
    here = tmp_path / "here"
    here.mkdir()
    inode = here.stat().st_ino
    monkeypatch.chdir(here)
    result = _run(str(scenario), "--out", ".")
    assert result.exit_code == 0, result.output
    assert (here / "summary.json").is_file() and (here / "config.yaml").is_file()
    assert here.stat().st_ino == inode  # the same folder (a shell in it still sees the run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here", "s.yaml"]  # no checkpoint left


def test_out_dot_in_a_folder_with_files_is_refused_before_any_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tasks: list[str]
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(TINY)
    monkeypatch.chdir(tmp_path)
    result = _run(str(scenario), "--out", ".")
    assert result.exit_code == 2, result.output
    assert "already exists and is not empty" in " ".join(result.stderr.split())
    assert tasks == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


# --- every refusal before the first task ---------------------------------------------------------


def _existing(out: Path) -> None:
    out.mkdir()
    (out / "notes.txt").write_text("mine")


def _a_file(out: Path) -> None:
    out.write_text("mine")


def _left_checkpoint(out: Path) -> None:
    folder = checkpoint_dir(out)
    folder.mkdir()
    (folder / ckpt.MANIFEST).write_text("{}")


REFUSED: list[tuple[str, Callable[[Path], None], str, list[str], int]] = [
    ("output-not-empty", _existing, "", [], 2),
    ("output-a-file", _a_file, "", [], 2),
    ("output-under-a-file", lambda out: out.parent.write_text("x"), "", [], 2),
    ("checkpoint-left", _left_checkpoint, "", [], 2),
    ("resume-nothing", lambda out: None, "", ["--resume"], 2),
    ("unknown-key", lambda out: None, "partition: {alpah: 1}\n", [], 2),
    ("topology-missing", lambda out: None, "network: {topology: no/net.yaml}\n", [], 2),
    ("dataset-offline", lambda out: None, "", ["--set", "dataset={name: mnist, root: ROOT}"], 3),
]


@pytest.mark.parametrize(
    ("case", "prepare", "extra", "options", "code"), REFUSED, ids=[c[0] for c in REFUSED]
)
def test_refusals_come_before_the_first_task(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tasks: list[str],
    case: str,
    prepare: Callable[[Path], None],
    extra: str,
    options: list[str],
    code: int,
) -> None:
    from torchvision.datasets import mnist

    def offline(*args: Any, **kwargs: Any) -> None:
        raise OSError("network is unreachable (mocked)")

    monkeypatch.setattr(mnist, "download_and_extract_archive", offline)
    out = tmp_path / ("f/run" if case == "output-under-a-file" else "run")
    prepare(out)
    before = sorted(p.name for p in tmp_path.iterdir())
    scenario = tmp_path / "s.yaml"
    scenario.write_text(TINY + extra)
    options = [o.replace("ROOT", str(tmp_path / "data")) for o in options]
    result = _run(str(scenario), "--out", str(out), *options)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert tasks == []
    assert sorted(p.name for p in tmp_path.iterdir() if p != scenario) == before


# --- structurally: no refusal is reachable after the first task -----------------------------------

# The errors the CLI turns into exit 2 or 3 (refusal() makes a ScenarioError).
REFUSALS = {"OutputError", "ScenarioError", "ResumeRefused", "DatasetUnavailable", "refusal"}


def _raised(exc: ast.expr | None) -> str | None:
    node = exc.func if isinstance(exc, ast.Call) else exc
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _refusing_functions() -> dict[tuple[str, int], str]:
    """(file, first line) -> name of every function of nmoe_sim that raises a refusal itself
    (found in the sources, so a new check is covered without being listed here)."""
    found: dict[tuple[str, int], str] = {}

    def visit(node: ast.AST, path: str, function: ast.FunctionDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, path, child)
                continue
            if isinstance(child, ast.Raise) and function and _raised(child.exc) in REFUSALS:
                for line in (function.lineno, *(d.lineno for d in function.decorator_list)):
                    found[(path, line)] = function.name
            visit(child, path, function)

    for file in PACKAGE.rglob("*.py"):
        visit(ast.parse(file.read_text(), str(file)), str(file), None)
    return found


def _calls_in_order(run: Callable[[], Any], watched: set[tuple[str, int]]) -> list[str]:
    """Names of the watched functions, in the order the run calls them (every thread)."""
    calls: list[str] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if event == "call" and (code.co_filename, code.co_firstlineno) in watched:
            calls.append(code.co_name)

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return calls


@pytest.mark.parametrize("resume", [False, True])
def test_every_refusal_a_run_reaches_comes_before_its_first_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resume: bool
) -> None:
    scenario = Scenario.model_validate(yaml.safe_load(TINY))
    out = tmp_path / "run"
    if resume:  # a run stopped in its second method: the resume restores the first
        real = engine.BASELINE_RUNNERS["fedavg"]

        def stop(ctx: Any) -> Any:
            raise KeyboardInterrupt

        monkeypatch.setitem(engine.BASELINE_RUNNERS, "fedavg", stop)
        with pytest.raises(RunInterrupted):
            engine.run_scenario(scenario, out)
        monkeypatch.setitem(engine.BASELINE_RUNNERS, "fedavg", real)
    refusing = _refusing_functions()
    first_task = engine.run_methods.__code__
    watched = {*refusing, (first_task.co_filename, first_task.co_firstlineno)}
    assert all(os.path.isabs(f) for f, _ in watched)

    calls = _calls_in_order(lambda: engine.run_scenario(scenario, out, resume=resume), watched)
    assert (out / "summary.json").is_file()
    start = calls.index("run_methods")
    assert {"check_output_dir", "open_checkpoint", "resolve_device"} <= set(calls[:start])
    assert calls[start + 1 :] == [], f"refusals after the work began: {calls[start + 1 :]}"
