"""The `network.radio` section: access rates from a channel model (off by default).

Defaults are 3GPP system-simulation values: a 20 MHz carrier at 3.5 GHz, a 23 dBm phone
(power class 3) and a 46 dBm macro base station, noise figures of 9 dB (phone) and 5 dB (base
station), log-normal shadowing of 8 dB decorrelating over 50 m, and TR 36.942's attenuated and
truncated Shannon bound (Annex A): efficiency alpha log2(1 + SNR), none below -10 dB, at most
4.4 b/s/Hz down (alpha 0.6) and 2.0 up (alpha 0.4).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nmoe_sim.strict import StrictModel

PathLossName = Literal["macro", "uma_los", "uma_nlos", "umi_los", "umi_nlos"]


class DirectionConfig(StrictModel):
    """One direction of the access link: who transmits, at what power, and its receiver."""

    tx_power_dbm: float = Field(ge=-30, le=60, description="transmit power, -30..60 dBm")
    noise_figure_db: float = Field(ge=0, le=30, description="receiver noise figure, 0..30 dB")
    efficiency: float = Field(
        ge=0.01, le=1, description="alpha of TR 36.942: the share of Shannon's bound, 0.01..1"
    )
    max_spectral_efficiency: float = Field(
        ge=0.01, le=30, description="b/s/Hz at most, 0.01..30 (TR 36.942: 4.4 down, 2.0 up)"
    )
    min_snr_db: float = Field(-10.0, ge=-50, le=50, description="below this SNR, no rate")


def _uplink() -> DirectionConfig:
    return DirectionConfig(
        tx_power_dbm=23.0, noise_figure_db=5.0, efficiency=0.4, max_spectral_efficiency=2.0
    )


def _downlink() -> DirectionConfig:
    return DirectionConfig(
        tx_power_dbm=46.0, noise_figure_db=9.0, efficiency=0.6, max_spectral_efficiency=4.4
    )


class RadioConfig(StrictModel):
    """Client access rates from distance, shadowing and fading; off unless `enabled`."""

    enabled: bool = Field(False, description="access links' rates come from the channel model")
    path_loss: PathLossName = Field(
        "uma_nlos",
        description="macro (128.1 + 37.6 log10 d_km), or TR 38.901 uma_los, uma_nlos, umi_los, "
        "umi_nlos",
    )
    frequency_ghz: float = Field(3.5, ge=0.5, le=100, description="carrier (TR 38.901 models)")
    bandwidth_mhz: float = Field(
        20.0, ge=0.18, le=400, description="each cell's spectrum in each direction, MHz"
    )
    shadowing_db: float = Field(
        8.0, ge=0, le=20, description="standard deviation of log-normal shadowing, 0..20 dB"
    )
    shadowing_correlation_m: float = Field(
        50.0, ge=1, le=10_000, description="distance over which shadowing decorrelates (e^-1)"
    )
    fast_fading: Literal["none", "rayleigh"] = Field(
        "none",
        description="rayleigh: each step's rate is its mean over Rayleigh fading (ergodic rate)",
    )
    update_ms: float = Field(
        1000.0,
        ge=10,
        le=600_000,
        description="how often a moving client's rate is recomputed, 10..600,000 ms",
    )
    sharing: Literal["airtime", "none"] = Field(
        "airtime",
        description="airtime: the clients transmitting in a cell (each direction) share its "
        "spectrum in equal time; none: each has the whole carrier",
    )
    uplink: DirectionConfig = Field(default_factory=_uplink)
    downlink: DirectionConfig = Field(default_factory=_downlink)
