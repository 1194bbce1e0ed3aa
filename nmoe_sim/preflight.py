"""A scenario checked as a whole before any work: the schema (config.py), the topology file and
the network built from it, with every problem reported at once, the most fundamental first
(problems.py). `validate`, `run` and `sweep` all go through `check_scenario`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nmoe_sim.config import TOPOLOGY_NAMES, Scenario, ScenarioError, collect_scenario, refusal
from nmoe_sim.network import build
from nmoe_sim.network.build import NetworkSetup
from nmoe_sim.network.topology import TopologyError, load_topology
from nmoe_sim.problems import Problem, Severity, leading_key

TOPOLOGY = "network.topology"


@dataclass(frozen=True)
class CheckedScenario:
    scenario: Scenario
    network: NetworkSetup  # built once here, handed on to the run
    notes: list[str]  # file keys an override made inert, one line per reason


def check_scenario(
    path: Path, overrides: list[str] | None = None, seed: int | None = None
) -> CheckedScenario:
    """The scenario and its network, or ScenarioError listing every problem found."""
    loaded = collect_scenario(path, overrides, seed)
    problems = list(loaded.problems)
    sc = loaded.scenario
    source_ok = not any(p.key == TOPOLOGY for p in problems)
    network = None
    if sc is not None and source_ok:
        try:
            network = build.build_network(sc.network, sc.clients.count, sc.seed)
        except ScenarioError as exc:
            problems.append(_built(exc))
    elif sc is None and source_ok and loaded.topology not in (None, *TOPOLOGY_NAMES):
        problems += _topology_file_problems(Path(str(loaded.topology)))
    if problems or sc is None or network is None:
        raise refusal(problems)
    return CheckedScenario(sc, network, loaded.notes())


def _built(exc: ScenarioError) -> Problem:
    """A refusal of build_network: a defect of the topology (file) or a conflict with it."""
    message = str(exc)
    severity = exc.severity if exc.severity is not None else Severity.CONFLICT
    return Problem(severity, message, leading_key(message) or "network")


def _topology_file_problems(file: Path) -> list[Problem]:
    """A topology file's own defects, where the rest of the scenario is too wrong to build."""
    try:
        load_topology(file)
    except TopologyError as exc:
        return [Problem(Severity.VALUE, f"{TOPOLOGY}: {exc}", TOPOLOGY)]
    return []
