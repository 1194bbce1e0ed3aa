"""Names of the methods a scenario can run, and how NMoE method names decompose."""

from __future__ import annotations

from dataclasses import dataclass

BASELINES = ("local", "fedavg", "centralized")
EXTRACTORS = ("fedce", "fedsc")
GATES = ("fedgate", "rollgate", "rangate")
# Routing references: no gate training, fixed routing over the same experts.
REFERENCES = ("own_expert", "uniform")

NMOE_METHODS = tuple(f"nmoe/{fe}/{g}" for fe in EXTRACTORS for g in GATES + REFERENCES)
ALL_METHODS = BASELINES + NMOE_METHODS


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
