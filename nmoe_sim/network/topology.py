"""Topologies over clients. Until real edge topologies land, every client neighbours every other."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx


def full_mesh(client_ids: Sequence[int]) -> nx.Graph:
    return nx.complete_graph(list(client_ids))
