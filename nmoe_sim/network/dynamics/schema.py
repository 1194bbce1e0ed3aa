"""The `network.dynamics` section of a scenario: which links change over time, and how.

Changes are given per target: a link class (`access`: client to base station or hub, `d2d`:
client to client, `backhaul`: between base stations and the cloud), the access links of the
clients of one device class (`device_classes`), or single links (`links`). Each target may set a
trace (`trace` for both directions, or `uplink_trace` / `downlink_trace`), log-normal `fading`
of its rate and `gilbert_elliott` bursts of loss. Where several targets set the same thing for a
link, the most specific wins: a single link, then its client's device class, then its class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nmoe_sim.strict import StrictModel

TraceFormat = Literal["auto", "mahimahi", "csv"]


class FadingConfig(StrictModel):
    """Log-normal fading of a link's rate: an AR(1) process on its logarithm (mean kept)."""

    sigma: float = Field(
        ge=0.001,
        le=3,
        description="standard deviation of the natural log of the rate factor, 0.001..3 (0.5: "
        "the rate is within x/1.65 of its mean two thirds of the time)",
    )
    correlation_s: float = Field(
        5.0, ge=0.01, le=1e6, description="correlation time of the log-rate, 0.01..1e6 s"
    )
    step_s: float = Field(
        1.0, ge=0.01, le=1e5, description="the factor changes every step_s seconds, 0.01..1e5 s"
    )


class GilbertElliottConfig(StrictModel):
    """Bursty loss: a good and a bad state held for exponential times."""

    good_s: float = Field(
        10.0, ge=0.001, le=1e7, description="mean time in the good state, 0.001..1e7 s"
    )
    bad_s: float = Field(
        0.5, ge=0.001, le=1e7, description="mean time in the bad state, 0.001..1e7 s"
    )
    good_loss: float = Field(0.0, ge=0, lt=1, description="share of packets lost when good")
    bad_loss: float = Field(0.1, ge=0, lt=1, description="share of packets lost when bad")


class LinkChangesConfig(StrictModel):
    """What changes on the links of one target."""

    trace: str | None = Field(None, description="trace file for both directions")
    uplink_trace: str | None = Field(
        None, description="trace file for the direction away from the client (a link's a -> b)"
    )
    downlink_trace: str | None = Field(
        None, description="trace file for the direction towards the client (a link's b -> a)"
    )
    format: TraceFormat = Field(
        "auto", description="auto (.csv files are CSV, others Mahimahi), mahimahi or csv"
    )
    repeat: bool = Field(
        False, description="a CSV trace wraps around (its last row closes the period)"
    )
    offset: Literal["random", "none"] = Field(
        "random",
        description="random: each client (a backhaul link: its base station) reads the trace "
        "from its own seeded point, so links sharing a trace are not in lock-step",
    )
    bin_ms: int = Field(
        100, ge=1, le=60_000, description="Mahimahi traces: the shortest interval read as one rate"
    )
    fading: FadingConfig | None = None
    gilbert_elliott: GilbertElliottConfig | None = None

    @model_validator(mode="after")
    def _one_trace_per_direction(self) -> LinkChangesConfig:
        if self.trace is not None and (self.uplink_trace or self.downlink_trace):
            raise ValueError(
                "trace sets both directions; give either trace or uplink_trace / downlink_trace"
            )
        return self

    def traces(self) -> dict[str, str]:
        """Trace file per direction ("up", "down") that this target sets."""
        out = {}
        for direction, file in (
            ("up", self.uplink_trace or self.trace),
            ("down", self.downlink_trace or self.trace),
        ):
            if file is not None:
                out[direction] = file
        return out

    def is_set(self) -> bool:
        return bool(self.traces()) or self.fading is not None or self.gilbert_elliott is not None


class SingleLinkChangesConfig(LinkChangesConfig):
    """Changes of one link `a` - `b` (uplink: a -> b, downlink: b -> a)."""

    a: str = Field(description="a node of the topology")
    b: str = Field(description="a node linked to a")


class DynamicsConfig(StrictModel):
    """Links that change over simulated time (off unless a target sets something)."""

    access: LinkChangesConfig = LinkChangesConfig()
    d2d: LinkChangesConfig = LinkChangesConfig()
    backhaul: LinkChangesConfig = LinkChangesConfig()
    device_classes: dict[str, LinkChangesConfig] = Field(
        default_factory=dict,
        description="per client device class: changes of its clients' access links",
    )
    links: list[SingleLinkChangesConfig] = Field(default_factory=list, max_length=10_000)

    @model_validator(mode="after")
    def _d2d_has_no_direction(self) -> DynamicsConfig:
        if self.d2d.uplink_trace or self.d2d.downlink_trace:
            raise ValueError(
                "network.dynamics.d2d: device-to-device links have no up or down; use trace"
            )
        return self

    @property
    def enabled(self) -> bool:
        return (
            self.access.is_set()
            or self.d2d.is_set()
            or self.backhaul.is_set()
            or any(c.is_set() for c in self.device_classes.values())
            or any(c.is_set() for c in self.links)
        )

    def targets(self) -> list[tuple[str, str, LinkChangesConfig]]:
        """(its key under network.dynamics, a short name for people, its settings) of every
        target."""
        return [
            ("access", "", self.access),
            ("d2d", "d2d", self.d2d),
            ("backhaul", "backhaul", self.backhaul),
            *((f"device_classes.{k}", f"{k} clients'", v) for k, v in self.device_classes.items()),
            *((f"links[{i}]", f"{v.a}-{v.b}", v) for i, v in enumerate(self.links)),
        ]

    def files(self) -> list[tuple[str, str, LinkChangesConfig]]:
        """(where, file, its target's settings) for every trace file named."""
        out = []
        for where, _, target in self.targets():
            for key in ("trace", "uplink_trace", "downlink_trace"):
                file = getattr(target, key)
                if file is not None:
                    out.append((f"network.dynamics.{where}.{key}", file, target))
        return out
