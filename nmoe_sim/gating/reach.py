"""Which experts a client may use in stage 3 and in serving (`stages.gate.remote_experts`).

By default every client reaches every expert: stage 3 exchanges features with all n-1 remote
experts (n*(n-1) pairs). With `remote_experts = m` each client draws a seeded sample of m remote
experts and keeps its own: the exchange has n*m pairs, and the client's gate is restricted to
those m+1 experts everywhere (training, evaluation, serving), so no expert whose outputs the
client never received is ever used.
"""

from __future__ import annotations

from nmoe_sim.seeds import numpy_rng


def reachable_experts(
    seed: int, pipeline: str, client: int, num_clients: int, remote: int
) -> tuple[int, ...]:
    """Client `client`'s own expert plus `remote` others drawn without replacement, sorted.

    The stream is named by pipeline and client (not by gating scheme), so every scheme of one
    extractor pipeline routes over the same experts and the schemes stay comparable.
    """
    if not 1 <= remote <= num_clients - 1:
        raise ValueError(f"remote={remote} must lie in 1..{num_clients - 1}")
    rng = numpy_rng(seed, pipeline, "remote_experts", client)
    drawn = rng.choice(num_clients - 1, size=remote, replace=False)
    # Drawn among the n-1 other ids: shift those at or above the client's own past it.
    others = [int(j) + int(j >= client) for j in drawn]
    return tuple(sorted([client, *others]))
