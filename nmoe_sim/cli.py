"""The `nmoe-sim` command line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from nmoe_sim.config import Scenario, ScenarioError, load_scenario
from nmoe_sim.telemetry.output import OutputError
from nmoe_sim.telemetry.summary import RunSummary
from nmoe_sim.telemetry.table import summary_table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Simulate federated training of a Networked Mixture-of-Experts at the mobile edge.",
)
# Piped output gets a wide table rather than rich's 80 columns, which cut figures short.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

EXIT_BAD_INPUT = 2
EXIT_MISSING_DATA = 3

ScenarioArg = typer.Argument(..., help="scenario YAML file, e.g. scenarios/mec.yaml")
SetOpt = typer.Option(
    [], "--set", help="override a key by dotted path, e.g. --set partition.alpha=0.1 (repeatable)"
)
SeedOpt = typer.Option(None, "--seed", help="override the scenario's seed")
RayAddressOpt = typer.Option(
    None,
    "--ray-address",
    help="run the clients on this Ray cluster (implies runtime.backend=ray), e.g. auto or "
    "ray://head:10001",
)


def _ray_overrides(address: str | None) -> list[str]:
    """--ray-address as scenario overrides; quoted so YAML keeps any address a string."""
    if address is None:
        return []
    quoted = address.replace("'", "''")
    return ["runtime.backend=ray", f"runtime.ray_address='{quoted}'"]


def _fail(message: str, code: int) -> typer.Exit:
    # The message quotes user text (paths, YAML lines): never read it as rich markup.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


@contextmanager
def _run_errors(interrupted: str) -> Iterator[None]:
    """Failures the user can act on, found once work has started: one message, an exit code."""
    from nmoe_sim.data import DatasetUnavailable

    try:
        yield
    except (OutputError, ScenarioError) as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    except DatasetUnavailable as exc:
        raise _fail(str(exc), EXIT_MISSING_DATA) from None
    except KeyboardInterrupt:
        raise _fail(interrupted, 130) from None


def _load(path: Path, overrides: list[str], seed: int | None) -> Scenario:
    try:
        return load_scenario(path, overrides, seed)
    except ScenarioError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None


@app.command()
def validate(scenario: Path = ScenarioArg, set_: list[str] = SetOpt, seed: int | None = SeedOpt):
    """Check a scenario (with overrides) against the schema and build its network; run nothing."""
    from nmoe_sim.network.build import build_network

    sc = _load(scenario, set_, seed)
    try:
        build_network(sc.network, sc.clients.count, sc.seed)
    except ScenarioError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    net = sc.network
    clock = (
        "ideal network"
        if net.topology == "ideal"
        else f"{net.topology} network over {net.transport}"
    )
    out.print(f"{scenario}: valid ({len(sc.methods)} methods, {sc.clients.count} clients, {clock})")


@app.command()
def run(
    scenario: Path = ScenarioArg,
    out_dir: Path | None = typer.Option(None, "--out", help="run directory (must not exist)"),
    set_: list[str] = SetOpt,
    seed: int | None = SeedOpt,
    ray_address: str | None = RayAddressOpt,
):
    """Run every method of a scenario and write its run directory."""
    # Imported here so `validate` and `--help` stay fast (torch is heavy).
    from nmoe_sim.engine import default_out_dir, run_scenario

    sc = _load(scenario, [*set_, *_ray_overrides(ray_address)], seed)
    target = out_dir or sc.output.dir or default_out_dir(sc)
    with _run_errors("interrupted; no run directory was written"):
        summary = run_scenario(sc, target, err)
    out.print(summary_table(RunSummary.from_dict(summary)))
    out.print(f"run directory: {target}")


@app.command()
def sweep(
    scenario: Path = ScenarioArg,
    grid: list[str] = typer.Option(
        ..., "--grid", help="swept key and values, e.g. --grid network.bandwidth_mbps=1,10,100"
    ),
    out_dir: Path | None = typer.Option(None, "--out", help="sweep directory (must not exist)"),
    set_: list[str] = SetOpt,
    seed: int | None = SeedOpt,
    jobs: int | None = typer.Option(
        None, "--jobs", min=1, help="points run at once (default: cores; 1 with the ray backend)"
    ),
    ray_address: str | None = RayAddressOpt,
):
    """Run a scenario over the grid of --grid values: one run directory per point + sweep.csv."""
    from nmoe_sim.engine import default_out_dir
    from nmoe_sim.sweep import parse_grid, plan_sweep, run_sweep

    try:
        axes = [parse_grid(g) for g in grid]
        points = plan_sweep(scenario, axes, [*set_, *_ray_overrides(ray_address)], seed)
    except ScenarioError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    target = out_dir or default_out_dir(points[0].scenario).with_name(
        f"sweep-{default_out_dir(points[0].scenario).name}"
    )
    err.print(f"sweep: {len(points)} points into {target}")
    with _run_errors(f"interrupted; finished points are kept in {target}"):
        table = run_sweep(points, target, jobs)
    typer.echo(table.to_string(index=False))
    out.print(f"sweep table: {target / 'sweep.csv'}")


@app.command()
def report(
    path: Path = typer.Argument(
        ..., help="run directory (with summary.json) or sweep directory (with sweep.csv)"
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        help="report folder (default PATH/report; an earlier report there is replaced, any "
        "other existing folder is refused)",
    ),
):
    """Write PNG figures, index.html and (for a run) timeline.json for a run or a sweep."""
    # Imported here so `--help` stays fast (matplotlib, pandas).
    from nmoe_sim.report import ReportError, build_report

    try:
        target = build_report(path, out_dir)
    except ReportError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    except KeyboardInterrupt:
        raise _fail("interrupted; no report written (an earlier one is kept)", 130) from None
    out.print(f"report: {target / 'index.html'}")
    if (target / "timeline.json").is_file():
        out.print(f"timeline: {target / 'timeline.json'} (open in https://ui.perfetto.dev)")


def main() -> None:
    app()
