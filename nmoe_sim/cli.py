"""The `nmoe-sim` command line."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nmoe_sim.preflight import CheckedScenario


def _interrupted_while_starting(signum: int, frame: FrameType | None) -> None:
    # Ctrl-C (or SIGTERM) during the imports below: a word and the signal's exit code, never
    # a traceback from deep inside an import.
    sys.stderr.write("interrupted while starting; nothing was run\n")
    raise SystemExit(128 + signum)


try:  # only the main thread may set handlers (a test runner may import this elsewhere)
    _STARTUP = {
        s: signal.signal(s, _interrupted_while_starting) for s in (signal.SIGINT, signal.SIGTERM)
    }
except ValueError:
    _STARTUP = {}

import shlex  # noqa: E402  # (after the handlers, like every import below)
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402

from nmoe_sim import interrupt  # noqa: E402
from nmoe_sim.checkpoint import PROGRESS, checkpoint_dir  # noqa: E402
from nmoe_sim.config import ScenarioError  # noqa: E402
from nmoe_sim.interrupt import RunInterrupted, exit_code, interruptible  # noqa: E402
from nmoe_sim.telemetry.output import OutputError, default_run_dir, named_dir  # noqa: E402
from nmoe_sim.telemetry.summary import RunSummary  # noqa: E402
from nmoe_sim.telemetry.table import summary_table  # noqa: E402

for _signum, _handler in _STARTUP.items():
    signal.signal(_signum, _handler)

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
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


EXIT_FAILED = 1  # a run failed at run time (or, for a sweep, some point did)

ResumeOpt = typer.Option(
    False,
    "--resume",
    help="continue the interrupted run (or sweep) in --out from its checkpoint; finished "
    "work is not run again",
)


def resume_command(command: str, scenario: Path, target: Path, extra: list[str]) -> str:
    """The exact command that continues this one, quoted for a shell."""
    return shlex.join(["nmoe-sim", command, str(scenario), "--out", str(target), *extra])


def _options(set_: list[str], seed: int | None, ray_address: str | None) -> list[str]:
    """The options the user gave that shape the scenario, as they gave them."""
    out = [a for s in set_ for a in ("--set", s)]
    out += ["--seed", str(seed)] if seed is not None else []
    out += ["--ray-address", ray_address] if ray_address is not None else []
    return out


@contextmanager
def _run_errors(
    not_started: str, resume_hint: str, kept: Callable[[], bool] = lambda: True
) -> Iterator[None]:
    """Failures the user can act on, found once work has started: one message, an exit code.
    An interruption (SIGINT or SIGTERM) says what finished and how to go on; so does a failure
    after some work was `kept`."""
    from nmoe_sim.data import DatasetUnavailable

    try:
        with interruptible():
            yield
    except (OutputError, ScenarioError) as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    except DatasetUnavailable as exc:
        raise _fail(str(exc), EXIT_MISSING_DATA) from None
    except RunInterrupted as exc:
        _report(f"{exc}; resume with: {resume_hint}")
        raise typer.Exit(exit_code(exc)) from None
    except KeyboardInterrupt as exc:
        _report(not_started)
        raise typer.Exit(exit_code(exc)) from None
    except Exception as exc:  # a failure no check foresaw: one line, and how to go on
        message = f"the run failed: {type(exc).__name__}: {' '.join(str(exc).split())}"
        if kept():
            message += f"; finished work is kept: after fixing the cause, go on with: {resume_hint}"
        raise _fail(message, EXIT_FAILED) from None


def _load(path: Path, overrides: list[str], seed: int | None) -> CheckedScenario:
    """The scenario and its network, checked as a whole (every problem at once, exit 2); file
    keys an override made inert are named on stderr."""
    from nmoe_sim.preflight import check_scenario

    try:
        checked = check_scenario(path, overrides, seed)
    except ScenarioError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    _notes(checked.notes)
    return checked


def _notes(notes: list[str]) -> None:
    for line in dict.fromkeys(notes):  # once each, in order
        err.print(f"note: {escape(line)}", highlight=False, soft_wrap=True)


@app.command()
def validate(scenario: Path = ScenarioArg, set_: list[str] = SetOpt, seed: int | None = SeedOpt):
    """Check a scenario (with overrides) against the schema and build its network; run nothing."""
    from nmoe_sim.network.build import describe

    checked = _load(scenario, set_, seed)
    sc = checked.scenario
    network = describe(sc.network, checked.network)
    out.print(
        f"{scenario}: valid ({len(sc.methods)} methods, {sc.clients.count} clients, {network})",
        highlight=False,
    )


@app.command()
def run(
    scenario: Path = ScenarioArg,
    out_dir: Path | None = typer.Option(None, "--out", help="run directory (must not exist)"),
    set_: list[str] = SetOpt,
    seed: int | None = SeedOpt,
    ray_address: str | None = RayAddressOpt,
    resume: bool = ResumeOpt,
):
    """Run every method of a scenario and write its run directory."""
    checked = _load(scenario, [*set_, *_ray_overrides(ray_address)], seed)
    sc = checked.scenario
    target = named_dir(out_dir or sc.output.dir or default_run_dir(sc.name))
    options = _options(set_, seed, ray_address)
    again = resume_command("run", scenario, target, [*options, "--resume"])

    def kept() -> bool:
        return (checkpoint_dir(target) / PROGRESS).is_file()

    with _run_errors("interrupted before any work was saved; nothing was written", again, kept):
        # Imported here so `validate` and `--help` stay fast (torch is heavy).
        from nmoe_sim.engine import run_scenario

        summary = run_scenario(sc, target, err, resume=resume, network=checked.network)
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
    resume: bool = ResumeOpt,
):
    """Run a scenario over the grid of --grid values: one run directory per point + sweep.csv.
    A point that fails is recorded in sweep.csv (status, error) and the exit code is 1."""
    from nmoe_sim.sweep import parse_grid, plan_sweep, run_sweep

    notes: list[str] = []
    try:
        axes = [parse_grid(g) for g in grid]
        points = plan_sweep(scenario, axes, [*set_, *_ray_overrides(ray_address)], seed, notes)
    except ScenarioError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    _notes(notes)
    target = named_dir(out_dir or default_run_dir(f"sweep-{points[0].scenario.name}"))
    err.print(f"sweep: {len(points)} points into {target}")
    extra = [a for g in grid for a in ("--grid", g)] + _options(set_, seed, ray_address)
    extra += ["--jobs", str(jobs)] if jobs is not None else []
    again = resume_command("sweep", scenario, target, [*extra, "--resume"])
    with _run_errors(f"interrupted; finished points are kept in {target}", again):
        table = run_sweep(points, target, jobs, resume=resume)
    typer.echo(table.to_string(index=False))
    out.print(f"sweep table: {target / 'sweep.csv'}")
    failed = table.loc[table["status"] == "failed", "point"].tolist()
    if failed:
        raise _fail(
            f"{len(failed)} of {len(points)} sweep points failed ({', '.join(failed)}; see the "
            f"status and error columns of sweep.csv); after fixing the cause, run them with: "
            f"{again}",
            EXIT_FAILED,
        )


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
    # An interruption anywhere (the imports included) is reported as `run` reports it.
    try:
        with interruptible():
            # Imported here so `--help` stays fast (matplotlib, pandas).
            from nmoe_sim.report import ReportError, build_report

            interrupt.reclaim_signals()  # should an import have taken SIGINT/SIGTERM
            try:
                target = build_report(path, out_dir)
            except ReportError as exc:
                raise _fail(str(exc), EXIT_BAD_INPUT) from None
    except KeyboardInterrupt as exc:
        _report("interrupted; no report written (an earlier one is kept)")
        raise typer.Exit(exit_code(exc)) from None
    out.print(f"report: {target / 'index.html'}")
    if (target / "timeline.json").is_file():
        out.print(f"timeline: {target / 'timeline.json'} (open in https://ui.perfetto.dev)")


NOT_BEGUN = "interrupted before the command began its work; nothing was written"


def main() -> None:
    # Commands report their own interruptions; this covers one outside them (e.g. while typer
    # parses the arguments), which typer turns into a silent exit 130 whatever the signal.
    try:
        with interruptible():
            app()
    except KeyboardInterrupt as exc:
        err.print(NOT_BEGUN, highlight=False)
        sys.exit(exit_code(exc))
    except SystemExit as exc:
        signum = interrupt.received
        if signum is None or exc.code != 130 or _reported:
            raise
        err.print(NOT_BEGUN, highlight=False)
        sys.exit(128 + signum)


_reported = False  # whether a command already said it was interrupted


def _report(message: str) -> None:
    global _reported
    _reported = True
    # soft_wrap: a resume command in the message must stay one line to be copied.
    err.print(escape(message), highlight=False, soft_wrap=True)
