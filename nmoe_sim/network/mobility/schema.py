"""The `network.mobility` section: where clients and base stations are, how clients move, and when
they hand over from one base station to another."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nmoe_sim.strict import StrictModel

MOBILITY_MODELS = ("static", "random_waypoint", "gauss_markov", "trace")
MAX_AREA_M = 1e6  # positions beyond a thousand kilometres are mistakes


class HandoverConfig(StrictModel):
    """LTE event A3 (ns-3's A3RsrpHandoverAlgorithm defaults): a client hands over when another
    base station is heard better than its own by `hysteresis_db` for `time_to_trigger_ms`."""

    hysteresis_db: float = Field(3.0, ge=0, le=30, description="A3 margin, 0..30 dB")
    time_to_trigger_ms: float = Field(
        256.0, ge=0, le=60_000, description="how long the margin must hold, 0..60,000 ms"
    )
    measurement_ms: float = Field(
        200.0,
        ge=1,
        le=60_000,
        description="how often signal strength is measured, 1..60,000 ms (ns-3's filter "
        "period: 200)",
    )
    interruption_ms: float = Field(
        50.0,
        ge=0,
        le=60_000,
        description="time a handover cuts the client off (transfers pause, messages wait), "
        "0..60,000 ms",
    )


class MobilityConfig(StrictModel):
    """Client movement over a plane of base stations (positions in metres)."""

    model: Literal["static", "random_waypoint", "gauss_markov", "trace"] = Field(
        "static",
        description="static (today's network), random_waypoint, gauss_markov or trace (a CSV "
        "of time_s, client, x_m, y_m)",
    )
    speed_mps: float = Field(
        1.4,
        ge=0.01,
        le=100,
        description="walking speed (random_waypoint) or mean speed (gauss_markov), 0.01..100 m/s",
    )
    pause_s: float = Field(
        2.0, ge=0, le=1e6, description="random_waypoint: pause at each waypoint, 0..1e6 s"
    )
    alpha: float = Field(
        0.75,
        ge=0,
        le=1,
        description="gauss_markov: memory of speed and direction (0: random walk, 1: straight)",
    )
    time_step_s: float = Field(
        1.0, ge=0.01, le=1e4, description="gauss_markov: step of speed and direction, 0.01..1e4 s"
    )
    trace: str | None = Field(
        None, description="trace model: CSV file of time_s, client, x_m, y_m rows"
    )
    inter_site_distance_m: float = Field(
        500.0,
        ge=10,
        le=1e5,
        description="generated layouts: base stations this far apart on a square grid, clients "
        "within half of it of their own; the plane reaches half of it beyond the outer ones",
    )
    handover: HandoverConfig = HandoverConfig()

    @property
    def moves(self) -> bool:
        return self.model != "static"

    @model_validator(mode="after")
    def _model_keys(self) -> MobilityConfig:
        uses = _USES[self.model]
        dead = [k for k in self._set_off_default(*_MODEL_KEYS) if k not in uses]
        if dead:
            users = [m for m, keys in _USES.items() if dead[0] in keys]
            raise ValueError(
                f"network.mobility.{dead[0]}: has no effect with model {self.model!r} (used by "
                f"{', '.join(users)}); drop the key or choose that model"
            )
        if self.model == "trace" and self.trace is None:
            raise ValueError(
                "network.mobility.trace: the trace model reads positions from a CSV file "
                "(time_s, client, x_m, y_m); set network.mobility.trace=FILE"
            )
        return self


# The keys each model reads (besides model, handover and the layout).
_USES: dict[str, tuple[str, ...]] = {
    "static": (),
    "random_waypoint": ("speed_mps", "pause_s"),
    "gauss_markov": ("speed_mps", "alpha", "time_step_s"),
    "trace": ("trace",),
}
_MODEL_KEYS = ("speed_mps", "pause_s", "alpha", "time_step_s", "trace")
