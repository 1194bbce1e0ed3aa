"""Wireless access rates: the channel model's SNR and rate, fading averaged over a step, and a
cell's spectrum shared in time by the clients transmitting in it."""

from __future__ import annotations

import math
from collections.abc import Generator

import numpy as np
import pytest
import simpy
import yaml

from nmoe_sim.config import NetworkConfig
from nmoe_sim.network.build import build_network
from nmoe_sim.network.dynamics.links import LinkProfile
from nmoe_sim.network.dynamics.steps import Steps
from nmoe_sim.network.flows import FlowNetwork
from nmoe_sim.network.radio.rates import spectral_efficiency
from nmoe_sim.network.radio.schema import DirectionConfig
from nmoe_sim.network.topology import Topology, star

MBPS = 1e6


def one_cell_at(distance_m: float) -> dict:
    """A cloud - base station - one client topology with positions: the client `distance_m`
    east of its base station."""
    return {
        "nodes": [
            {"name": "cloud", "role": "cloud", "device_class": "s"},
            {"name": "bs0", "role": "edge", "device_class": "e", "x_m": 0.0, "y_m": 0.0},
            {"name": "c0", "role": "client", "device_class": "p", "x_m": distance_m, "y_m": 0.0},
        ],
        "links": [
            {"a": "cloud", "b": "bs0", "bandwidth_mbps": 1000, "latency_ms": 1},
            {"a": "bs0", "b": "c0", "bandwidth_mbps": 10, "latency_ms": 5},
        ],
    }


def test_snr_and_rate_at_200_m_on_the_macro_model(tmp_path) -> None:
    # The worked example: 128.1 + 37.6 log10(0.2) = 101.8 dB; a 23 dBm phone over 10 MHz with a
    # 9 dB noise figure: noise -174 + 70 + 9 = -95 dBm, SNR 16.2 dB, Shannon 54 Mbps; the
    # uplink's TR 36.942 bound (0.4 log2(1 + SNR), at most 2 b/s/Hz) gives 20 Mbps.
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump(one_cell_at(200.0)))
    cfg = NetworkConfig.model_validate(
        {
            "topology": str(path),
            "radio": {
                "enabled": True,
                "path_loss": "macro",
                "bandwidth_mhz": 10,
                "shadowing_db": 0,
                "uplink": {
                    "tx_power_dbm": 23,
                    "noise_figure_db": 9,
                    "efficiency": 1.0,
                    "max_spectral_efficiency": 30,
                },
            },
        }
    )
    setup = build_network(cfg, 1, seed=0)
    assert setup.link_changes is not None
    up = setup.link_changes.schedule("c0", "bs0").state_at(0.0)
    loss = 128.1 + 37.6 * math.log10(0.2)
    snr_db = 23 - loss - (-174 + 70 + 9)
    assert snr_db == pytest.approx(16.2, abs=0.05)
    assert up.capacity_bps == pytest.approx(10e6 * math.log2(1 + 10 ** (snr_db / 10)), rel=1e-9)
    assert up.capacity_bps / MBPS == pytest.approx(54, abs=0.5)
    capped = DirectionConfig(
        tx_power_dbm=23, noise_figure_db=9, efficiency=0.4, max_spectral_efficiency=2.0
    )
    assert spectral_efficiency(np.array([snr_db]), capped, False)[0] * 10 == pytest.approx(20.0)
    assert up.until_s == math.inf  # a client that never moves keeps its rate


def test_no_rate_below_the_least_snr() -> None:
    d = DirectionConfig(
        tx_power_dbm=23, noise_figure_db=9, efficiency=0.6, max_spectral_efficiency=4.4
    )
    se = spectral_efficiency(np.array([-10.5, -9.5, 40.0]), d, False)
    assert se[0] == 0.0
    assert se[1] == pytest.approx(0.6 * math.log2(1 + 10**-0.95))
    assert se[2] == 4.4


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 25.0])
def test_rayleigh_rate_is_the_mean_over_an_exponential_channel_gain(snr_db: float) -> None:
    # E[log2(1 + rho X)], X ~ Exp(1): integrated on a fine grid here, by Gauss-Laguerre there.
    d = DirectionConfig(
        tx_power_dbm=23,
        noise_figure_db=9,
        efficiency=1.0,
        max_spectral_efficiency=30,
        min_snr_db=-50,
    )
    rho = 10 ** (snr_db / 10)
    x = np.linspace(0, 60, 600_001)
    mean = np.trapezoid(np.log2(1 + rho * x) * np.exp(-x), x)
    got = spectral_efficiency(np.array([snr_db]), d, True)[0]
    assert got == pytest.approx(mean, rel=1e-4)
    assert got < math.log2(1 + rho)  # Jensen: fading costs rate at every SNR


class Cell:
    """Both clients' uplinks share one medium; each has a constant rate of its own."""

    def __init__(self, rates_mbps: dict[str, float]) -> None:
        self.rates = rates_mbps

    def schedule(self, u: str, v: str, attrs: object = None) -> LinkProfile | None:
        if u in self.rates:
            return LinkProfile(0.0, 0.0, 0.0, capacity=Steps.constant(self.rates[u] * MBPS))
        return None

    def medium(self, u: str, v: str) -> str | None:
        return "cell-up" if u in self.rates else None


def star2() -> Topology:
    return star(2, 1000.0, 0.0)


def test_clients_transmitting_in_one_cell_share_its_time_equally() -> None:
    # c0 alone would send at 10 Mbps, c1 at 40: together each has half the time, 5 and 20 Mbps.
    # c1's 8 Mbit end at 0.4 s (c0 has sent 2 by then); c0 then has the cell to itself and its
    # last 6 Mbit take 0.6 s more.
    env = simpy.Environment()
    net = FlowNetwork(star2(), dynamics=Cell({"c0": 10.0, "c1": 40.0}))  # type: ignore[arg-type]
    ends: dict[str, float] = {}

    def up(client: str) -> Generator:
        yield from net.carry(env, client, "cloud", 1_000_000)
        ends[client] = env.now

    env.process(up("c0"))
    env.process(up("c1"))
    env.run()
    assert ends["c1"] == pytest.approx(0.4, rel=1e-12)
    assert ends["c0"] == pytest.approx(1.0, rel=1e-12)


def test_two_flows_of_one_client_take_one_share_of_the_cell() -> None:
    # c0 sends two messages at once, c1 one: the cell's time is split between the two clients,
    # and c0's two flows split c0's half (2.5 Mbps each of its 5).
    env = simpy.Environment()
    net = FlowNetwork(star2(), dynamics=Cell({"c0": 10.0, "c1": 10.0}))  # type: ignore[arg-type]
    ends: list[tuple[str, float]] = []

    def up(client: str, size: int) -> Generator:
        yield from net.carry(env, client, "cloud", size)
        ends.append((client, env.now))

    env.process(up("c0", 250_000))
    env.process(up("c0", 250_000))
    env.process(up("c1", 1_000_000))
    env.run()
    # c0's two 2 Mbit flows at 2.5 Mbps end at 0.8 s, c1 has sent 4 Mbit at 5 Mbps; then c1
    # alone at 10 Mbps: 4 Mbit more, 0.4 s.
    assert [t for c, t in ends if c == "c0"] == [pytest.approx(0.8, rel=1e-12)] * 2
    assert [t for c, t in ends if c == "c1"] == [pytest.approx(1.2, rel=1e-12)]


def test_fading_on_a_radio_link_never_passes_the_carriers_bound() -> None:
    # Near the base station the downlink reaches 4.4 b/s/Hz x 20 MHz = 88 Mbit/s; a log-normal
    # fading factor (sigma 1) on top may lower it, never raise it past that.
    cfg = NetworkConfig.model_validate(
        {
            "topology": "mec",
            "cells": 1,
            "radio": {"enabled": True, "shadowing_db": 0},
            "mobility": {"inter_site_distance_m": 20},
            "dynamics": {"access": {"fading": {"sigma": 1.0, "step_s": 1.0}}},
        }
    )
    setup = build_network(cfg, 2, seed=0)
    assert setup.link_changes is not None
    down = setup.link_changes.schedule("bs0", "c0")
    rates = [down.state_at(float(t)).capacity_bps for t in range(2000)]
    assert max(rates) <= 88e6
    assert max(rates) == pytest.approx(88e6)  # often at the bound: the client is 10 m away
    assert min(rates) < 40e6  # and fading does lower it
