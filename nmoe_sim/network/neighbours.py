"""Which clients a random walk (RanGate) may step to from each client, as ascending client ids.

In a star, or in cells without device-to-device links, every client neighbours every other
client behind the same hub: n^2 pairs, which no run should build. `GroupNeighbours` keeps each
client's group once (2n ids in all) and answers "the group but me" as a view; `GraphNeighbours`
holds an explicit graph, for topologies with direct client links.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Protocol, overload

import networkx as nx
import numpy as np


class Neighbours(Protocol):
    @property
    def clients(self) -> Sequence[int]:
        """Every client id, ascending."""
        ...

    def of(self, client: int) -> Sequence[int]:
        """The clients a walk may step to from `client`, ascending."""
        ...

    def entries(self) -> int:
        """Client ids held in memory (what grows with the network: linear, never n^2)."""
        ...


class AllBut(Sequence[int]):
    """An ascending array of ids without one of them, indexed without a copy."""

    def __init__(self, ids: np.ndarray, excluded: int) -> None:
        self._ids = ids
        self._at = bisect.bisect_left(ids, excluded)
        if self._at == len(ids) or ids[self._at] != excluded:
            raise ValueError(f"{excluded} is not among the ids")

    def __len__(self) -> int:
        return len(self._ids) - 1

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...
    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return int(self._ids[i if i < self._at else i + 1])


class GroupNeighbours:
    """Clients in groups (the clients behind one hub); a client neighbours its group-mates.
    Every group has at least two clients."""

    def __init__(self, groups: Sequence[Sequence[int]]) -> None:
        self._members = [np.sort(np.asarray(g, dtype=np.int64)) for g in groups]
        if any(len(m) < 2 for m in self._members):
            raise ValueError("every group needs at least two clients")
        self._clients = np.sort(np.concatenate(self._members))
        self._group_of = np.empty(len(self._clients), dtype=np.int64)
        for index, members in enumerate(self._members):
            self._group_of[members] = index

    @property
    def clients(self) -> Sequence[int]:
        return self._clients.tolist()

    def of(self, client: int) -> Sequence[int]:
        return AllBut(self._members[self._group_of[client]], client)

    def entries(self) -> int:
        return len(self._group_of) + sum(len(m) for m in self._members)


class GraphNeighbours:
    """An explicit neighbour graph over client ids."""

    def __init__(self, graph: nx.Graph) -> None:
        self.graph = graph

    @property
    def clients(self) -> Sequence[int]:
        return sorted(self.graph.nodes)

    def of(self, client: int) -> Sequence[int]:
        return sorted(self.graph.neighbors(client))

    def entries(self) -> int:
        return self.graph.number_of_nodes() + 2 * self.graph.number_of_edges()
