"""Stage 3 of NMoE: how each client comes to weight the experts.

Two kinds, each a registry: gating schemes that train the clients' gates on the network
(`gating.base.LearnedGate`), and routing references that fix the weights with no stage 3
(`gating.base.FixedRouting`). A new one is a module in this package plus its line below;
`nmoe/<objective>/<name>` is then a method a scenario can name.
"""

from nmoe_sim.registry import Registry

GATING_SCHEMES = Registry(
    "gating scheme",
    {
        "fedgate": "nmoe_sim.gating.fedgate:FedGate",
        "rollgate": "nmoe_sim.gating.rollgate:RollGate",
        "rangate": "nmoe_sim.gating.rangate:RanGate",
        "localgate": "nmoe_sim.gating.localgate:LocalGate",
    },
)
ROUTING_REFERENCES = Registry(
    "routing reference",
    {
        "own_expert": "nmoe_sim.gating.own_expert:OwnExpert",
        "uniform": "nmoe_sim.gating.uniform:Uniform",
    },
)


def routing_scheme(name: str):  # -> GatingScheme; untyped here so the schema imports no torch
    """A fresh instance of the scheme or reference called `name`."""
    registry = ROUTING_REFERENCES if name in ROUTING_REFERENCES else GATING_SCHEMES
    return registry.get(name)()
