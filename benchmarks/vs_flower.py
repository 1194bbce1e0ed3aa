"""nmoe-sim vs Flower vs a bare PyTorch loop: one FedAvg workload three ways, timed and weighed.

    .venv/bin/python benchmarks/vs_flower.py                          # all three arms, once
    .venv/bin/python benchmarks/vs_flower.py --repeat 3               # medians of 3 (interleaved)
    .venv/bin/python benchmarks/vs_flower.py --arms floor,nmoe-sim    # skip Flower
    .venv/bin/python benchmarks/vs_flower.py --nmoe-backend inprocess # default: ray
    .venv/bin/python benchmarks/vs_flower.py --set baselines.fedavg.rounds=2   # quick check
    .venv/bin/python benchmarks/vs_flower.py --scale-test             # nmoe-sim, 1000 clients
    .venv/bin/python benchmarks/vs_flower.py --out runs/bench-vs-flower

The workload is benchmarks/vs_flower/fedavg100.yaml: full Fashion-MNIST, 100 clients
(Dirichlet 0.5), the small CNN, 20 FedAvg rounds of 10 clients, 1 local epoch, SGD lr 0.05
momentum 0.9 batch 32, the global model scored on the whole test set after every round. Arms,
each one subprocess (`--set KEY=VALUE` overrides reach all three):

  floor     benchmarks/vs_flower/floor.py: a plain single-process loop over nmoe_sim's data,
            partition, model, `fit` and seeds (torch threads = all cores), the same clients per
            round as nmoe-sim, sample-weighted state-dict mean; no simulation machinery at all.
  nmoe-sim  `.venv/bin/nmoe-sim run fedavg100.yaml --set runtime.backend=BACKEND`; accuracy read
            from the run's summary.json (methods.fedavg.accuracy_global).
  flower    benchmarks/vs_flower/flower_run.py in benchmarks/.flower-venv (created on first use:
            `flwr[simulation]` with its own pinned Ray, torch/torchvision, nmoe_sim's
            dependencies): Flower's simulation engine, ServerApp + ClientApp through
            `flwr.simulation.run_simulation`, 1 CPU per client actor, the same model, partition,
            optimizer, seeds per (round, client) and centralized evaluation; Flower samples the
            clients itself (random node ids, unseeded), so its selection and accuracy differ
            from the other arms' and from run to run (71-83 % seen, vs 83.5 %).

Measured per arm, from outside: wall time of the whole subprocess (start to exit), peak of the
summed RSS over the process tree (the subprocess and every descendant ever seen, Ray's raylet,
GCS and workers included) polled every `--poll` s, and peak of the summed PSS (proportional set
size, which splits shared pages such as the torch libraries between the processes mapping them)
polled every `--pss-every` s (reading it costs ~2 ms per process). Also: CPU seconds of the tree,
CPU seconds the rest of the machine used meanwhile ("other CPU s": anything else running skews
the timings; on a 2-core machine a busy second core slows torch's 2-thread ops many times over),
the arm's own timer (data loading + training + evaluation, after interpreter start and imports)
and the final accuracy. Before each run the harness waits (up to `--idle-wait` s) for the machine
to go idle, and it imports torch once per venv beforehand so no arm pays a cold file cache.

Aims: nmoe-sim wall <= 1.10 x floor wall; Flower wall >= 5 x nmoe-sim wall; nmoe-sim peak memory
<= half of Flower's. `--scale-test` runs only nmoe-sim with 1000 clients, 100 per round and
`--scale-rounds` (default 3) rounds, aiming at peak RSS <= 8 GB.

Results: a table on stdout, and results.json / results.csv plus each arm's log and nmoe-sim's run
directories under `--out` (default runs/bench-vs-flower-<timestamp>).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.markup import escape
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks" / "vs_flower"
PRESETS = {
    "compute": HERE / "fedavg100.yaml",  # 100 clients x 600 samples: compute-bound
    "cross-device": HERE / "crossdevice1000.yaml",  # 1,000 clients x 60: overhead-bound
}
SCALE_SCENARIO = HERE / "scale.yaml"
NMOE_SIM = ROOT / ".venv" / "bin" / "nmoe-sim"
FLOWER_VENV = ROOT / "benchmarks" / ".flower-venv"
# nmoe-sim runs once per backend; the arm name says which.
NMOE_ARMS = {"nmoe-sim-inprocess": "inprocess", "nmoe-sim-ray": "ray"}
ARMS = ("floor", *NMOE_ARMS, "flower")
# What the Flower venv gets: Flower's simulation extra (its own Ray pin), the torch build the
# repo's venv has (tried first; unpinned if it cannot be had), nmoe_sim's other dependencies.
FLWR_SPEC = "flwr[simulation]==1.41.0"
TORCH_PINS = ("torch==2.15.0", "torchvision==0.29.2")
SCALE_CLIENTS = (1_000, 10_000, 100_000)
SCALE_TOPOLOGIES = ("star", "mec")
GB = 1e9


# Measuring a process tree ------------------------------------------------------------------


@dataclass
class Measured:
    wall_s: float
    peak_rss: int  # bytes, summed over the tree
    peak_pss: int | None
    peak_procs: int
    cpu_s: float  # the tree's user + system seconds
    other_cpu_s: float  # busy CPU seconds of everything else on the machine meanwhile
    returncode: int
    leftovers: list[str] = field(default_factory=list)  # descendants alive after the exit
    at_peak: list[str] = field(default_factory=list)  # "name GB" of each process at peak RSS


def _busy_cpu_s() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def wait_until_idle(max_wait_s: float, below_cores: float = 0.3, window_s: float = 3.0) -> float:
    """Wait (at most `max_wait_s`) until the machine is nearly idle; returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < max_wait_s:
        before = _busy_cpu_s()
        time.sleep(window_s)
        if (_busy_cpu_s() - before) / window_s < below_cores:
            break
    return time.monotonic() - start


def _pss(proc: psutil.Process) -> int:
    # smaps_rollup: the kernel sums PSS itself (psutil's memory_full_info parses all of smaps).
    with open(f"/proc/{proc.pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def _label(proc: psutil.Process) -> str:
    """A short name: Ray's worker title, else the script or executable run."""
    try:
        args = proc.cmdline()
    except psutil.Error:
        return str(proc.pid)
    if args and args[0].startswith("ray::"):
        return args[0].split()[0]
    script = next((a for a in args[1:] if a.endswith(".py") or a.endswith("nmoe-sim")), None)
    return Path(script or (args[0] if args else proc.name())).name


class TreeMonitor:
    """Polls a process and all its descendants (kept once seen, even if re-parented)."""

    def __init__(self, pid: int, poll_s: float, pss_every_s: float) -> None:
        self.root = psutil.Process(pid)
        self.poll_s, self.pss_every_s = poll_s, pss_every_s
        self.seen: dict[int, psutil.Process] = {pid: self.root}
        self.cpu: dict[int, float] = {}
        self.peak_rss, self.peak_pss, self.peak_procs = 0, 0, 0
        self.at_peak: list[str] = []
        self.pss_ok = pss_every_s > 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def alive(self) -> list[psutil.Process]:
        out = []
        for p in self.seen.values():
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.Error:
                continue
        return out

    def _loop(self) -> None:
        next_pss = 0.0
        while not self._stop.is_set():
            try:
                for child in self.root.children(recursive=True):
                    self.seen.setdefault(child.pid, child)
            except psutil.Error:
                pass
            want_pss = self.pss_ok and time.monotonic() >= next_pss
            pss = 0
            each: dict[int, int] = {}
            for pid, proc in list(self.seen.items()):
                try:
                    with proc.oneshot():
                        each[pid] = proc.memory_info().rss
                        t = proc.cpu_times()
                    self.cpu[pid] = t.user + t.system
                    if want_pss:
                        pss += _pss(proc)
                except (psutil.Error, OSError):
                    continue
            rss, procs = sum(each.values()), len(each)
            if rss > self.peak_rss:
                self.peak_rss = rss
                top = sorted(each.items(), key=lambda item: -item[1])
                self.at_peak = [f"{_label(self.seen[p])} {r / GB:.2f}" for p, r in top]
            self.peak_procs = max(self.peak_procs, procs)
            if want_pss:
                self.peak_pss = max(self.peak_pss, pss)
                next_pss = time.monotonic() + self.pss_every_s
            self._stop.wait(self.poll_s)


def measure(
    cmd: list[str], env: dict[str, str], log: Path, poll_s: float, pss_every_s: float
) -> Measured:
    busy0 = _busy_cpu_s()
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    monitor = TreeMonitor(proc.pid, poll_s, pss_every_s)
    monitor.start()
    try:
        returncode = proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)  # the arm's own session: it and its descendants
        raise
    wall = time.perf_counter() - start
    # Descendants (Ray's) may outlive the root by a moment; give them 10 s, then end them.
    deadline = time.monotonic() + 10.0
    while monitor.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    monitor.stop()
    leftovers = []
    for p in monitor.alive():
        try:
            leftovers.append(f"{p.pid} {' '.join(p.cmdline())[:80]}")
            p.terminate()
        except psutil.Error:
            pass
    cpu = sum(monitor.cpu.values())
    return Measured(
        wall_s=wall,
        peak_rss=monitor.peak_rss,
        peak_pss=monitor.peak_pss if monitor.pss_ok else None,
        peak_procs=monitor.peak_procs,
        cpu_s=cpu,
        other_cpu_s=max(0.0, _busy_cpu_s() - busy0 - cpu),
        returncode=returncode,
        leftovers=leftovers,
        at_peak=monitor.at_peak,
    )


# The Flower virtual environment ----------------------------------------------------------------


def _nmoe_sim_requirements() -> list[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in deps if not d.replace(" ", "").startswith(("torch>", "torchvision>"))]


def flower_python(venv: Path, console: Console) -> Path:
    """The Flower venv's interpreter; creates and fills the venv first if needed."""
    python = venv / "bin" / "python"
    stamp = venv / ".vs-flower-installed"
    wanted = "\n".join([FLWR_SPEC, *TORCH_PINS, *_nmoe_sim_requirements(), "psutil"])
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log = venv.parent / ".flower-venv-install.log"
    console.print(f"[bold]flower[/]: installing {escape(FLWR_SPEC)} into {venv} (log: {log}) ...")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    others = [*_nmoe_sim_requirements(), "psutil"]
    with log.open("w") as out:
        done = subprocess.run([*pip, FLWR_SPEC, *TORCH_PINS, *others], stdout=out, stderr=out)
        if done.returncode != 0:
            console.print(f"[yellow]flower[/]: {' '.join(TORCH_PINS)} not installable; unpinned")
            unpinned = [p.split("==")[0] for p in TORCH_PINS]
            done = subprocess.run([*pip, FLWR_SPEC, *unpinned, *others], stdout=out, stderr=out)
    if done.returncode != 0:
        raise SystemExit(f"flower: pip install failed; see {log}")
    stamp.write_text(wanted)
    return python


def _venv_version(python: Path, module: str) -> str:
    out = subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.__version__)"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "?"


# Arms ----------------------------------------------------------------------------------------


@dataclass
class ArmRun:
    arm: str
    measured: Measured
    accuracy: float | None
    inner_s: float | None
    log: str
    detail: dict[str, Any]


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # every arm that uses Ray starts its own local cluster
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _set_args(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def run_arm(
    arm: str, args: argparse.Namespace, overrides: list[str], out: Path, tag: str
) -> ArmRun:
    env = _base_env()
    log = out / f"{arm}-{tag}.log"
    result = out / f"{arm}-{tag}.json"
    scenario = str(args.scenario)
    if arm == "floor":
        cmd = [sys.executable, str(HERE / "floor.py"), "--scenario", scenario]
        cmd += ["--result", str(result), *_set_args(overrides)]
        if args.floor_threads:
            cmd += ["--threads", str(args.floor_threads)]
    elif arm in NMOE_ARMS:
        run_dir = out / "runs" / f"{arm}-{tag}"
        cmd = [str(NMOE_SIM), "run", scenario, "--out", str(run_dir)]
        cmd += _set_args([f"runtime.backend={NMOE_ARMS[arm]}", *overrides])
    else:
        env["FLWR_TELEMETRY_ENABLED"] = "0"  # no network here; Flower would try to phone home
        env["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] = "0"  # silences a Ray FutureWarning
        cmd = [str(args.flower_python), str(HERE / "flower_run.py"), "--scenario", scenario]
        cmd += ["--result", str(result), *_set_args(overrides)]
    measured = measure(cmd, env, log, args.poll, args.pss_every)
    detail: dict[str, Any] = {"command": cmd}
    accuracy = inner = None
    if measured.returncode == 0:
        if arm in NMOE_ARMS:
            summary = json.loads((run_dir / "summary.json").read_text())
            accuracy = summary["methods"]["fedavg"]["accuracy_global"]
            inner = summary["wall_time_s"]
            detail["run_dir"] = str(run_dir)
        else:
            data = json.loads(result.read_text())
            accuracy, inner = data.pop("accuracy"), data.pop("inner_s")
            detail.update(data)
    return ArmRun(arm, measured, accuracy, inner, str(log), detail)


# Report --------------------------------------------------------------------------------------


def _gb(n: float | None) -> str:
    return "-" if n is None else f"{n / GB:.2f}"


def _median(runs: list[ArmRun], get: Callable[[ArmRun], float | None]) -> float | None:
    values = [v for v in map(get, runs) if v is not None]
    return statistics.median(values) if values else None


def summarize(arm: str, runs: list[ArmRun]) -> dict[str, Any]:
    walls = [r.measured.wall_s for r in runs]
    pss = [r.measured.peak_pss for r in runs if r.measured.peak_pss is not None]
    return {
        "arm": arm,
        "runs": len(runs),
        "failed": sum(r.measured.returncode != 0 for r in runs),
        "wall_s": statistics.median(walls),
        "wall_s_min": min(walls),
        "wall_s_max": max(walls),
        "inner_s": _median(runs, lambda r: r.inner_s),
        "peak_rss_bytes": max(r.measured.peak_rss for r in runs),
        "peak_pss_bytes": max(pss) if pss else None,
        "peak_procs": max(r.measured.peak_procs for r in runs),
        "cpu_s": _median(runs, lambda r: r.measured.cpu_s),
        "other_cpu_s": _median(runs, lambda r: r.measured.other_cpu_s),
        "accuracy": _median(runs, lambda r: r.accuracy),
    }


def add_overheads(rows: list[dict[str, Any]], client_tasks: int) -> None:
    """Per-client-task overhead of each arm: (its wall - the floor's wall) / client tasks, in ms.
    Every arm trains the same clients on the same data, so what is left is per-task machinery
    (dispatch, state, copies) plus fixed costs spread over the tasks."""
    floor = next((r["wall_s"] for r in rows if r["arm"] == "floor"), None)
    for row in rows:
        over = None if floor is None else 1e3 * (row["wall_s"] - floor) / client_tasks
        row["client_tasks"] = client_tasks
        row["overhead_ms_per_task"] = over


def results_table(title: str, rows: list[dict[str, Any]], repeat: int) -> Table:
    table = Table(title=title)
    wall = "wall s" if repeat == 1 else f"wall s (median of {repeat}) [min-max]"
    table.add_column("arm", no_wrap=True)
    for name in (
        wall,
        "own timer s",
        "start+stop s",
        "overhead ms / client task",
        "peak RSS GB (tree sum)",
        "peak PSS GB (tree sum)",
        "procs",
        "CPU s",
        "other CPU s",
        "accuracy %",
    ):
        table.add_column(name, justify="right")
    for row in rows:
        w = f"{row['wall_s']:.1f}"
        if repeat > 1:
            w += f" [{row['wall_s_min']:.1f}-{row['wall_s_max']:.1f}]"
        if row["failed"]:
            w += f" ({row['failed']} failed)"
        inner, over = row["inner_s"], row.get("overhead_ms_per_task")
        table.add_row(
            row["arm"],
            w,
            "-" if inner is None else f"{inner:.1f}",
            "-" if inner is None else f"{row['wall_s'] - inner:.1f}",
            "-" if over is None else f"{over:.2f}",
            _gb(row["peak_rss_bytes"]),
            _gb(row["peak_pss_bytes"]),
            str(row["peak_procs"]),
            f"{row['cpu_s']:.1f}",
            f"{row['other_cpu_s']:.1f}",
            "-" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f}",
        )
    return table


def ratio_lines(rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = []

    def ratio(a: str, b: str, key: str) -> float | None:
        if a in rows and b in rows and rows[a][key] and rows[b][key]:
            return rows[a][key] / rows[b][key]
        return None

    checks = []
    for nmoe in NMOE_ARMS:
        checks += [
            (nmoe, "floor", "wall_s", f"{nmoe} wall / floor wall", "<=", 1.10),
            ("flower", nmoe, "wall_s", f"Flower wall / {nmoe} wall", ">=", 5.0),
            ("flower", nmoe, "peak_rss_bytes", f"Flower peak RSS / {nmoe} peak RSS", ">=", 2.0),
        ]
    for a, b, key, label, op, aim in checks:
        value = ratio(a, b, key)
        if value is None:
            continue
        met = value <= aim if op == "<=" else value >= aim
        lines.append(f"{label}: {value:.2f} (aim {op} {aim:.2f}: {'met' if met else 'NOT met'})")
    return lines


def write_results(out: Path, meta: dict[str, Any], rows: list[dict], runs: list[ArmRun]) -> None:
    payload = {**meta, "summary": rows, "runs": [asdict(r) for r in runs]}
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# Scale test ----------------------------------------------------------------------------------


def _scale_overrides(clients: int, topology: str, rounds: int) -> list[str]:
    """`scale.yaml` at `clients` clients: the synthetic set with the same 2 train samples per
    client at every size (so a round's compute is the same, and what grows is per-client
    machinery), 100 clients per round; mec with 100 clients per cell."""
    out = [
        f"clients.count={clients}",
        f"dataset.train_samples={2 * clients}",
        f"baselines.fedavg.rounds={rounds}",
        f"network.topology={topology}",
    ]
    if topology == "mec":
        out.append(f"network.cells={clients // 100}")
    return out


def scale_test(args: argparse.Namespace, out: Path, console: Console) -> None:
    """nmoe-sim (in-process) at 1,000 / 10,000 / 100,000 clients on star and mec: validate
    seconds, run wall, seconds per round, peak RSS."""
    rows = []
    sizes = [int(c) for c in args.scale_clients.split(",")]
    for clients in sizes:
        for topology in SCALE_TOPOLOGIES:
            overrides = [*_scale_overrides(clients, topology, args.scale_rounds), *args.overrides]
            tag = f"{clients}-{topology}"
            waited = wait_until_idle(args.idle_wait) if args.idle_wait > 0 else 0.0
            console.print(f"[bold]{tag}[/] (waited {waited:.0f} s) ...")
            sets = _set_args(overrides)
            validate = measure(
                [str(NMOE_SIM), "validate", str(SCALE_SCENARIO), *sets],
                _base_env(),
                out / f"validate-{tag}.log",
                args.poll,
                0,
            )
            run_dir = out / "runs" / tag
            cmd = [str(NMOE_SIM), "run", str(SCALE_SCENARIO), "--out", str(run_dir), *sets]
            run = measure(cmd, _base_env(), out / f"run-{tag}.log", args.poll, 0)
            row: dict[str, Any] = {
                "clients": clients,
                "topology": topology,
                "validate_s": validate.wall_s,
                "validate_peak_rss_bytes": validate.peak_rss,
                "run_wall_s": run.wall_s,
                "peak_rss_bytes": run.peak_rss,
                "failed": validate.returncode != 0 or run.returncode != 0,
                "other_cpu_s": run.other_cpu_s,
            }
            if run.returncode == 0:
                row.update(_round_times(run_dir))
            rows.append(row)
            console.print(f"  {row}")
    (out / "scale.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = Table(title=f"scale test: FedAvg, 100 clients per round, {args.scale_rounds} rounds")
    for name in (
        "clients",
        "topology",
        "validate s",
        "validate peak RSS GB",
        "run wall s",
        "outside rounds s",
        "s / round",
        "peak RSS GB",
        "other CPU s",
    ):
        table.add_column(name, justify="right")
    for row in rows:
        per_round = row.get("s_per_round")
        table.add_row(
            f"{row['clients']:,}",
            row["topology"],
            f"{row['validate_s']:.2f}",
            _gb(row["validate_peak_rss_bytes"]),
            f"{row['run_wall_s']:.1f}" + (" (failed)" if row["failed"] else ""),
            "-" if per_round is None else f"{row['run_wall_s'] - row['rounds_s']:.1f}",
            "-" if per_round is None else f"{per_round:.3f}",
            _gb(row["peak_rss_bytes"]),
            f"{row['other_cpu_s']:.1f}",
        )
    Console(width=160).print(table)
    worst = max(r["peak_rss_bytes"] for r in rows)
    print(
        f"largest peak RSS {_gb(worst)} GB (aim <= 8.00: {'met' if worst <= 8 * GB else 'NOT met'})"
    )
    print(
        "'outside rounds s': the run's wall time less the FedAvg method's own (interpreter "
        "start, imports, data, partition, network, output files); 's / round': from the "
        "method's per-round wall-clock column in metrics.csv"
    )
    print(f"results: {out}")


def _round_times(run_dir: Path) -> dict[str, float]:
    """Seconds per round between the first and last round's metric rows, and the method's wall."""
    summary = json.loads((run_dir / "summary.json").read_text())
    with (run_dir / "metrics.csv").open() as f:
        walls = [float(r["wall_time_s"]) for r in csv.DictReader(f)]
    per_round = (walls[-1] - walls[0]) / (len(walls) - 1) if len(walls) > 1 else walls[0]
    return {"s_per_round": per_round, "rounds_s": summary["methods"]["fedavg"]["wall_time_s"]}


# Main ----------------------------------------------------------------------------------------


def warm_up(arms: list[str], flower: Path | None) -> None:
    """Import torch and nmoe_sim once per venv, unmeasured, so no arm pays a cold file cache
    for the libraries (the Flower venv has its own copy of torch)."""
    code = "import torch, nmoe_sim.engine"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    if "flower" in arms and flower is not None:
        code += ", flwr.simulation, ray"
        subprocess.run([str(flower), "-c", code], cwd=ROOT, check=True)


def client_tasks(scenario: Path, overrides: list[str]) -> int:
    """Client training tasks of the workload: rounds x clients per round."""
    sys.path.insert(0, str(ROOT))
    from nmoe_sim.config import load_scenario

    s = load_scenario(scenario, overrides)
    return s.baselines.fedavg.rounds * (s.federation.clients_per_round or s.clients.count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="compute")
    parser.add_argument("--scenario", type=Path, default=None, help="default: the preset's")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of arms")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--repeat", type=int, default=1, help="runs per arm, interleaved")
    parser.add_argument(
        "--scale-test",
        action="store_true",
        help="nmoe-sim alone at --scale-clients clients, star and mec",
    )
    parser.add_argument("--scale-clients", default=",".join(map(str, SCALE_CLIENTS)))
    parser.add_argument("--scale-rounds", type=int, default=3)
    parser.add_argument(
        "--floor-threads", type=int, default=None, help="torch threads of the floor; default all"
    )
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=300.0,
        help="before each run, wait up to this many s for the machine to go idle; 0: don't",
    )
    parser.add_argument("--poll", type=float, default=0.2, help="RSS poll interval, s")
    parser.add_argument("--pss-every", type=float, default=1.0, help="PSS interval, s; 0: none")
    parser.add_argument("--flower-venv", type=Path, default=FLOWER_VENV)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.scenario = args.scenario or PRESETS[args.preset]

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out: Path = args.out or ROOT / "runs" / f"bench-vs-flower-{stamp}"
    if out.exists() and any(out.iterdir()):
        parser.error(f"--out: {out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    if args.scale_test:
        scale_test(args, out, console)
        return
    arms = [a for a in args.arms.split(",") if a]
    if unknown := set(arms) - set(ARMS):
        parser.error(f"--arms: unknown {sorted(unknown)}; choose from {', '.join(ARMS)}")
    overrides = list(args.overrides)
    args.flower_python = flower_python(args.flower_venv, console) if "flower" in arms else None
    warm_up(arms, args.flower_python)

    runs: list[ArmRun] = []
    for i in range(args.repeat):
        for arm in arms:
            waited = wait_until_idle(args.idle_wait) if args.idle_wait > 0 else 0.0
            console.print(f"[bold]{arm}[/] run {i + 1}/{args.repeat} (waited {waited:.0f} s) ...")
            run = run_arm(arm, args, overrides, out, f"{i + 1}")
            run.detail["idle_wait_s"] = waited
            m = run.measured
            status = "ok" if m.returncode == 0 else f"[red]exit {m.returncode}[/], see {run.log}"
            console.print(
                f"  {status}: {m.wall_s:.1f} s, peak RSS {_gb(m.peak_rss)} GB, "
                f"PSS {_gb(m.peak_pss)} GB, other CPU {m.other_cpu_s:.1f} s"
            )
            for left in m.leftovers:
                console.print(f"  [yellow]ended a leftover process[/]: {left}")
            runs.append(run)
    rows = [summarize(arm, [r for r in runs if r.arm == arm]) for arm in arms]
    tasks = client_tasks(args.scenario, overrides)
    add_overheads(rows, tasks)

    meta = {
        "preset": args.preset,
        "scenario": str(args.scenario),
        "overrides": overrides,
        "repeat": args.repeat,
        "client_tasks": tasks,
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "poll_s": args.poll,
        "pss_every_s": args.pss_every,
        "floor_threads": args.floor_threads or os.cpu_count(),
    }
    if args.flower_python is not None:
        meta["flwr"] = _venv_version(args.flower_python, "flwr")
        meta["flower_ray"] = _venv_version(args.flower_python, "ray")
        meta["flower_torch"] = _venv_version(args.flower_python, "torch")
    write_results(out, meta, rows, runs)

    title = f"FedAvg, {args.scenario.name}" + (f" ({' '.join(overrides)})" if overrides else "")
    title += f", {tasks} client tasks"
    if "flwr" in meta:
        title += f", flwr {meta['flwr']} (ray {meta['flower_ray']})"
    Console(width=180).print(results_table(title, rows, args.repeat))
    by_arm = {r["arm"]: r for r in rows}
    for line in ratio_lines(by_arm):
        print(line)
    for arm in arms:
        first = next(r for r in runs if r.arm == arm).measured.at_peak
        rest = ", ".join(first[:4]) + (", ..." if len(first) > 4 else "")
        print(f"{arm} at its peak RSS (GB): {rest}")
    print(
        f"RSS polled every {args.poll:g} s, PSS every {args.pss_every:g} s, summed over each "
        "arm's process tree; 'start+stop s' is wall minus the arm's own timer (interpreter, "
        "imports, Ray or Flower start and stop); 'overhead ms / client task' is (arm wall - floor "
        "wall) / client tasks; 'other CPU s' is what the rest of the machine used meanwhile "
        "(timings are only comparable where it is near 0)"
    )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
