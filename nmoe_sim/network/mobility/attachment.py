"""Which base station each client is attached to over time, and when it hands over.

A client hears each base station at a strength that falls with distance (a path-loss model; all
base stations send at one power, so only the loss differs). It attaches first to the one it hears
best. Then, measuring every `measurement_ms`, it hands over when another is heard better than its
own by `hysteresis_db` at every measurement for at least `time_to_trigger_ms` (LTE event A3, as
ns-3's A3RsrpHandoverAlgorithm decides it): the handover happens at the measurement that
completes the time to trigger, to the base station heard best then. Fast fading and shadowing
are left out of this decision (they would make clients ping-pong between cells on every fade,
which a real network's filtering of measurements avoids).

Timelines are computed per client in blocks of measurements as later times are asked for, from
the client's track alone, so they are the same in every world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmoe_sim.network.mobility.layout import Layout, build_layout
from nmoe_sim.network.mobility.models import MODELS
from nmoe_sim.network.mobility.models.trace import read_positions
from nmoe_sim.network.mobility.pathloss import macro
from nmoe_sim.network.mobility.schema import MobilityConfig
from nmoe_sim.network.mobility.track import Track
from nmoe_sim.network.topology import Topology
from nmoe_sim.seeds import numpy_rng

_BLOCK = 512  # measurements computed at once


@dataclass(frozen=True, order=True)
class Handover:
    t_s: float
    order: int  # the client's place in the run: ties at one instant go in client order
    client: str
    source: str
    target: str


class _Timeline:
    """One client's serving base station over measurement instants k * measurement_s."""

    def __init__(self, owner: Mobility, client: str, order: int) -> None:
        self.owner = owner
        self.client = client
        self.order = order
        self.next_k = 0  # first measurement not yet evaluated
        self.serving = -1
        self.initial = -1
        self.since: float | None = None  # when the A3 condition started holding
        self.events: list[Handover] = []

    def reach(self, t: float) -> None:
        """Evaluate measurements up to time t."""
        owner = self.owner
        step = owner.measurement_s
        while (self.next_k - 1) * step < t:
            ks = np.arange(self.next_k, self.next_k + _BLOCK)
            ts = ks * step
            xs, ys = owner.tracks[self.client].positions(ts)
            d = np.hypot(
                xs[:, None] - owner.bs_xy[None, :, 0], ys[:, None] - owner.bs_xy[None, :, 1]
            )
            heard = -owner.path_loss(d)  # dB relative to the common transmit power
            self._scan(ts.tolist(), heard)
            self.next_k += _BLOCK

    def _scan(self, ts: list[float], heard: np.ndarray) -> None:
        owner = self.owner
        hysteresis, ttt = owner.hysteresis_db, owner.time_to_trigger_s
        best_all = np.argmax(heard, axis=1).tolist()
        rows = heard.tolist()
        for i, t in enumerate(ts):
            row = rows[i]
            if self.serving < 0:
                self.serving = self.initial = best_all[i]
                continue
            s = self.serving
            best = best_all[i]
            if best == s:  # the best other is below the serving one: no A3
                self.since = None
                continue
            if row[best] > row[s] + hysteresis:
                if self.since is None:
                    self.since = t
                if t - self.since >= ttt:
                    names = owner.stations
                    self.events.append(Handover(t, self.order, self.client, names[s], names[best]))
                    self.serving = best
                    self.since = None
            else:
                self.since = None

    def serving_at(self, t: float) -> str:
        self.reach(t)
        station = self.initial
        for event in self.events:
            if event.t_s > t:
                break
            station = self.owner.index[event.target]
        return self.owner.stations[station]


class Mobility:
    """The run's clients in motion: tracks, attachments and handovers (pure functions of time)."""

    def __init__(
        self,
        cfg: MobilityConfig,
        topology: Topology,
        seed: int,
        clients: list[str],
        path_loss: Callable[[np.ndarray], np.ndarray] = macro,
    ) -> None:
        self.cfg = cfg
        self.layout: Layout = build_layout(topology, cfg.inter_site_distance_m, seed)
        self.stations = list(self.layout.stations)
        self.index = {s: i for i, s in enumerate(self.stations)}
        self.bs_xy = np.array([self.layout.stations[s] for s in self.stations], dtype=float)
        self.path_loss = path_loss
        self.measurement_s = cfg.handover.measurement_ms / 1e3
        self.hysteresis_db = cfg.handover.hysteresis_db
        self.time_to_trigger_s = cfg.handover.time_to_trigger_ms / 1e3
        self.interruption_s = cfg.handover.interruption_ms / 1e3
        model = MODELS.get(cfg.model)
        positions = (
            read_positions(Path(cfg.trace), self.layout)
            if cfg.model == "trace" and cfg.trace
            else None
        )
        self.clients = clients
        self.tracks: dict[str, Track] = {
            c: model(c, cfg, self.layout, numpy_rng(seed, "mobility", c), positions)
            for c in clients
        }
        self._timelines = {c: _Timeline(self, c, i) for i, c in enumerate(clients)}

    @property
    def hands_over(self) -> bool:
        """Whether any handover can happen (clients move among two or more base stations)."""
        return self.cfg.moves and len(self.stations) > 1

    def serving_at(self, client: str, t: float) -> str:
        return self._timelines[client].serving_at(t)

    def handovers_between(self, t0: float, t1: float) -> list[Handover]:
        """Every handover with t0 < t <= t1, in time order (ties in client order)."""
        if not self.hands_over or t1 <= t0:
            return []
        out: list[Handover] = []
        for timeline in self._timelines.values():
            timeline.reach(t1)
            out.extend(e for e in timeline.events if t0 < e.t_s <= t1)
        out.sort()
        return out

    def position(self, client: str, t: float) -> tuple[float, float]:
        return self.tracks[client].at(t)

    def describe(self) -> str:
        """One line for `validate`."""
        cfg = self.cfg
        if cfg.model == "static":
            motion = "static clients"
        elif cfg.model == "trace":
            motion = f"positions from {cfg.trace}"
        else:
            motion = f"{cfg.model.replace('_', ' ')} {cfg.speed_mps:g} m/s"
        if not self.hands_over:
            return f"{motion} in {len(self.stations)} cell(s)"
        h = cfg.handover
        return (
            f"{motion}, handover {h.hysteresis_db:g} dB / {h.time_to_trigger_ms:g} ms "
            f"(cut {h.interruption_ms:g} ms) among {len(self.stations)} cells"
        )
