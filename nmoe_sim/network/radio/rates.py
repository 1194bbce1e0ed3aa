"""A client's access rate to a base station over time, from the channel model.

Every `update_ms` (once, for a client that never moves) the rate of the link between client c
and base station b in one direction is

    SNR = P_tx - PL(d(t)) - S(t) - (N0 + 10 log10(B) + NF)          (dB; N0 = -174 dBm/Hz)
    rate = B * min(alpha * log2(1 + SNR), max_spectral_efficiency), 0 below min_snr_db

with d the distance from the client's track to b, PL the path-loss model, S the shadowing of
the pair (log-normal, sigma dB, correlated over distance travelled as Gudmundson's model:
rho = exp(-moved / shadowing_correlation_m); the same for both directions) and B the cell's
bandwidth. With `fast_fading: rayleigh` the rate is the mean of that formula over Rayleigh
fading (|h|^2 exponential of mean 1, by quadrature): fading much faster than a step
is averaged, not simulated packet by packet. A rate of zero (outage) becomes the least capacity a
link may have. The rate is the link's with the whole carrier: a cell's clients share it in time
(`sharing: airtime`), which the flow network applies.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from nmoe_sim.network.dynamics.steps import regular_step
from nmoe_sim.network.mobility.attachment import Mobility
from nmoe_sim.network.mobility.pathloss import PATH_LOSS, PathLoss
from nmoe_sim.network.radio.schema import DirectionConfig, RadioConfig
from nmoe_sim.seeds import numpy_rng

NOISE_DBM_PER_HZ = -174.0
_BLOCK = 256


def _exponential_quadrature(n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[f(X)], X ~ Exp(1): the trapezoid rule in log x over
    [1e-9, 60] (a channel gain's mean over Rayleigh fading, whose log-rate is sharp near 0:
    Gauss-Laguerre is off by 0.1 % at 25 dB, this by 1e-8)."""
    u = np.linspace(math.log(1e-9), math.log(60.0), n)
    x = np.exp(u)
    w = x * np.exp(-x) * (u[1] - u[0])
    w[0] *= 0.5
    w[-1] *= 0.5
    return x, w


_NODES, _WEIGHTS = _exponential_quadrature()


def spectral_efficiency(snr_db: np.ndarray, d: DirectionConfig, rayleigh: bool) -> np.ndarray:
    """b/s/Hz at each SNR (dB): TR 36.942's attenuated, truncated Shannon bound, averaged over
    Rayleigh fading where asked."""
    snr = 10.0 ** (snr_db / 10.0)
    floor = 10.0 ** (d.min_snr_db / 10.0)
    if not rayleigh:
        se = np.minimum(d.efficiency * np.log2(1.0 + snr), d.max_spectral_efficiency)
        return np.where(snr >= floor, se, 0.0)
    faded = snr[:, None] * _NODES[None, :]
    se = np.minimum(d.efficiency * np.log2(1.0 + faded), d.max_spectral_efficiency)
    return np.where(faded >= floor, se, 0.0) @ _WEIGHTS


class _Pair:
    """The channel between one client and one base station: distances and shadowing per step."""

    def __init__(self, radio: Radio, client: str, station: str) -> None:
        self.radio = radio
        self.client = client
        self.station = station
        self.rng = numpy_rng(radio.seed, "radio", "shadowing", client, station)
        self.loss_db: list[float] = []  # path loss plus shadowing, per step
        self._shadow = float(self.rng.normal(0.0, radio.cfg.shadowing_db))
        self._last_xy: tuple[float, float] | None = None

    def extend(self, k: int) -> None:
        radio = self.radio
        while len(self.loss_db) <= k:
            first = len(self.loss_db)
            ts = np.arange(first, first + _BLOCK) * radio.step_s
            xs, ys = radio.mobility.tracks[self.client].positions(ts)
            bx, by = radio.mobility.layout.stations[self.station]
            pl = radio.path_loss(np.hypot(xs - bx, ys - by))
            sigma, corr = radio.cfg.shadowing_db, radio.cfg.shadowing_correlation_m
            noise = self.rng.standard_normal(_BLOCK).tolist()
            shadow = self._shadow
            last = self._last_xy if self._last_xy is not None else (float(xs[0]), float(ys[0]))
            out = []
            for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
                moved = math.hypot(x - last[0], y - last[1])
                if moved > 0 and sigma > 0:
                    rho = math.exp(-moved / corr)
                    shadow = rho * shadow + sigma * math.sqrt(1.0 - rho * rho) * noise[i]
                out.append(float(pl[i]) + shadow)
                last = (x, y)
            self._shadow, self._last_xy = shadow, last
            self.loss_db.extend(out)


class RadioRate:
    """One direction of one client - base station link: its rate (bits/s) per step."""

    def __init__(self, radio: Radio, pair: _Pair, direction: str) -> None:
        self.radio = radio
        self.pair = pair
        cfg = radio.cfg
        self.d = cfg.uplink if direction == "up" else cfg.downlink
        self.bandwidth_hz = cfg.bandwidth_mhz * 1e6
        self.noise_dbm = (
            NOISE_DBM_PER_HZ + 10 * math.log10(self.bandwidth_hz) + self.d.noise_figure_db
        )
        self.rates: list[float] = []

    def _extend(self, k: int) -> None:
        while len(self.rates) <= k:
            first = len(self.rates)
            self.pair.extend(first + _BLOCK - 1)
            loss = np.array(self.pair.loss_db[first : first + _BLOCK])
            snr_db = self.d.tx_power_dbm - loss - self.noise_dbm
            se = spectral_efficiency(snr_db, self.d, self.radio.cfg.fast_fading == "rayleigh")
            self.rates.extend((se * self.bandwidth_hz).tolist())

    def value_at(self, t_s: float) -> tuple[float, float]:
        if not self.radio.moving:
            self._extend(0)
            return self.rates[0], math.inf
        k, until = regular_step(t_s, self.radio.step_s)
        self._extend(k)
        return self.rates[k], until


class Radio:
    """The run's channel model: rates of every client - base station link it is asked for."""

    def __init__(self, cfg: RadioConfig, mobility: Mobility, seed: int) -> None:
        self.cfg = cfg
        self.mobility = mobility
        self.seed = seed
        self.moving = mobility.cfg.moves
        self.step_s = cfg.update_ms / 1e3
        self.path_loss: PathLoss = partial(
            PATH_LOSS[cfg.path_loss], frequency_ghz=cfg.frequency_ghz
        )
        self._pairs: dict[tuple[str, str], _Pair] = {}
        self._rates: dict[tuple[str, str, str], RadioRate] = {}

    def rate(self, client: str, station: str, direction: str) -> RadioRate:
        key = (client, station, direction)
        found = self._rates.get(key)
        if found is None:
            pair = self._pairs.get((client, station))
            if pair is None:
                pair = self._pairs[(client, station)] = _Pair(self, client, station)
            found = self._rates[key] = RadioRate(self, pair, direction)
        return found

    def max_rate_bps(self, direction: str) -> float:
        """The most a link can carry in a direction: the carrier at its best spectral
        efficiency (a fading factor on top of the channel model's rate never passes it)."""
        d = self.cfg.uplink if direction == "up" else self.cfg.downlink
        return self.cfg.bandwidth_mhz * 1e6 * d.max_spectral_efficiency

    def medium(self, station: str, direction: str) -> tuple[str, str] | None:
        """What the links of a cell and direction share (its spectrum), if they share it."""
        return (station, direction) if self.cfg.sharing == "airtime" else None

    def describe(self) -> str:
        cfg = self.cfg
        fading = ", Rayleigh fading" if cfg.fast_fading == "rayleigh" else ""
        return (
            f"radio {cfg.path_loss} {cfg.frequency_ghz:g} GHz, {cfg.bandwidth_mhz:g} MHz per cell"
            f"{' shared in airtime' if cfg.sharing == 'airtime' else ''}, shadowing "
            f"{cfg.shadowing_db:g} dB{fading}"
        )
