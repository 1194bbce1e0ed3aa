"""Names of the methods a scenario can run, and how NMoE method names decompose.

NMoE methods are `nmoe/<stage-1 objective>/<gating scheme>`, one for every pair of registered
plug-ins (`nmoe_sim/objectives/`, `nmoe_sim/gating/`).
"""

from __future__ import annotations

from dataclasses import dataclass

from nmoe_sim.gating import GATING_SCHEMES, ROUTING_REFERENCES
from nmoe_sim.objectives import OBJECTIVES

BASELINES = ("local", "fedavg", "centralized")
EXTRACTORS = OBJECTIVES.names
GATES = GATING_SCHEMES.names
# Routing references: no gate training, fixed routing over the same experts.
REFERENCES = ROUTING_REFERENCES.names

NMOE_METHODS = tuple(f"nmoe/{fe}/{g}" for fe in EXTRACTORS for g in GATES + REFERENCES)
ALL_METHODS = BASELINES + NMOE_METHODS
# What a scenario runs when it names no methods: the paper's comparison. A scheme added later is
# run where a scenario names it, and does not lengthen every default run.
PAPER_METHODS = BASELINES + tuple(
    f"nmoe/{fe}/{g}"
    for fe in ("fedce", "fedsc")
    for g in ("fedgate", "rollgate", "rangate", "own_expert", "uniform")
)


@dataclass(frozen=True)
class NmoeMethod:
    extractor: str
    routing: str

    @property
    def name(self) -> str:
        return f"nmoe/{self.extractor}/{self.routing}"

    @property
    def prefix(self) -> str:
        """The shared stages 1-2 pipeline this method branches from."""
        return f"nmoe/{self.extractor}"

    @property
    def trains_gate(self) -> bool:
        return self.routing in GATES


def parse_nmoe(name: str) -> NmoeMethod:
    _, extractor, routing = name.split("/")
    return NmoeMethod(extractor, routing)
