"""Stage 1 of NMoE: what the shared feature extractor is federated on.

An objective is one module in this package with a class following `objectives.base.Objective`;
add its line below and `nmoe/<name>/<gating scheme>` becomes a method a scenario can name.
"""

from nmoe_sim.registry import Registry

OBJECTIVES = Registry(
    "stage-1 objective",
    {
        "fedce": "nmoe_sim.objectives.fedce:FedCE",
        "fedsc": "nmoe_sim.objectives.fedsc:FedSC",
    },
)
