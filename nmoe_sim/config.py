"""Scenario schema, YAML loading and `--set` overrides.

Every scenario key is declared here with its type, range and default; unknown keys are errors.
Validation happens before any work starts and reports every problem with its dotted key path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nmoe_sim.data.catalog import DATASETS
from nmoe_sim.methods import ALL_METHODS, PAPER_METHODS, parse_nmoe
from nmoe_sim.network.dynamics.schema import DynamicsConfig
from nmoe_sim.network.mobility.schema import MobilityConfig
from nmoe_sim.network.radio.schema import RadioConfig
from nmoe_sim.network.transports import tcp
from nmoe_sim.problems import (
    NO_EFFECT,
    Invalid,
    NoEffect,
    Problem,
    Severity,
    is_moot,
    leading_key,
    no_effect,
    ordered,
    within,
)
from nmoe_sim.safe_yaml import YamlInputError, load_text, read_text
from nmoe_sim.strict import MAX_LATENCY_MS, MAX_MBPS, MIN_MBPS
from nmoe_sim.strict import StrictModel as _Strict


class ScenarioError(Exception):
    """A scenario that cannot be run; the message names the key and what is allowed."""

    def __init__(self, message: str, severity: Severity | None = None) -> None:
        super().__init__(message)
        self.severity = severity  # where the raiser knows it (see problems.py)


class OptimConfig(_Strict):
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.05, ge=1e-8, le=10, description="learning rate, 1e-8..10")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty, at most 1")
    batch_size: int = Field(64, ge=1, le=65536)


# (train, test) samples of each catalog entry, known without loading it; synthetic: the most
# train_samples / test_samples may generate (its defaults are SYNTHETIC_*_DEFAULT).
DATASET_SIZES: dict[str, tuple[int, int]] = {
    "fashion_mnist": (60_000, 10_000),
    "mnist": (60_000, 10_000),
    "cifar10": (50_000, 10_000),
    "synthetic": (200_000, 100_000),
}
SYNTHETIC_TRAIN_DEFAULT = 2000  # data/sources.py's default (that module imports torch)


class DatasetConfig(_Strict):
    name: str = Field("fashion_mnist", description="an entry of nmoe_sim/data/catalog.py")
    root: Path | None = Field(None, description="data folder; default $NMOE_SIM_DATA or ~/.cache")
    train_samples: int | None = Field(
        None, ge=1, le=10_000_000, description="seeded subset of the train set"
    )
    test_samples: int | None = Field(
        None, ge=1, le=10_000_000, description="seeded subset of the test set"
    )

    @field_validator("root", mode="before")
    @classmethod
    def _root_not_empty(cls, root: Any) -> Any:
        if isinstance(root, str) and not root.strip():
            raise ValueError(
                "dataset.root: an empty path; name the data folder or drop the key to use "
                "$NMOE_SIM_DATA or ~/.cache"
            )
        return root

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in DATASETS:
            raise Invalid(
                f"dataset.name: unknown {name!r}; choose one of {', '.join(DATASETS)}",
                Severity.UNKNOWN,
            )
        return name


class PartitionConfig(_Strict):
    scheme: Literal["iid", "dirichlet", "shards"] = "dirichlet"
    alpha: float = Field(
        0.5, ge=1e-3, le=1e6, description="Dirichlet concentration (scheme: dirichlet), 0.001..1e6"
    )
    classes_per_client: int = Field(
        2, ge=1, le=1000, description="shards per client (scheme: shards)"
    )
    min_samples: int = Field(
        10,
        ge=1,
        le=1_000_000,
        description="fewest train samples a client may get (every scheme; checked before the run)",
    )
    test_samples_per_client: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="size of each client's own test split (follows its label mix)",
    )


class ClientsConfig(_Strict):
    count: int = Field(10, ge=2, le=100_000, description="at most 100,000")


class ModelConfig(_Strict):
    extractor: Literal["small_cnn", "resnet18"] = "small_cnn"
    feature_dim: int = Field(128, ge=2, le=8192)
    expert_hidden: int = Field(128, ge=1, le=8192)
    gate_hidden: int = Field(64, ge=1, le=8192)
    projection_dim: int = Field(64, ge=2, le=8192, description="FedSC projection head output")


class ExtractorStageConfig(_Strict):
    """Stage 1: federated training of the shared feature extractor (FedCE / FedSC)."""

    rounds: int = Field(5, ge=1, le=100_000)
    local_epochs: int = Field(1, ge=1, le=10_000)
    optim: OptimConfig = OptimConfig()
    temperature: float = Field(
        0.5, ge=0.01, le=10, description="FedSC NT-Xent temperature, 0.01..10"
    )
    crop_scale_min: float = Field(0.4, ge=0.01, le=1, description="FedSC random-crop lower scale")
    jitter: float = Field(0.4, ge=0, le=1, description="FedSC brightness/contrast jitter")


class ExpertStageConfig(_Strict):
    """Stage 2: each client trains its personalized expert on frozen features."""

    epochs: int = Field(20, ge=1, le=10_000)
    optim: OptimConfig = OptimConfig(optimizer="adam", lr=1e-3, momentum=0.0)
    cross_fit_folds: int = Field(
        5,
        ge=1,
        le=50,
        description="folds giving the gate out-of-fold own-expert outputs; 1 = in-sample outputs",
    )


class GateStageConfig(_Strict):
    """Stage 3: the gate learns to mix experts (FedGate rounds, RollGate/RanGate passes)."""

    rounds: int = Field(
        5, ge=1, le=100_000, description="FedGate rounds; RollGate/RanGate passes over all clients"
    )
    local_epochs: int = Field(1, ge=1, le=10_000)
    top_k: int = Field(2, ge=1, description="experts mixed per input, at most clients.count")
    remote_experts: int | None = Field(
        None,
        ge=1,
        description="remote experts each client exchanges with and may route to (a seeded "
        "sample, plus its own); default: every other client",
    )
    routing_noise: float = Field(
        0.0, ge=0, le=100, description="std of Gaussian noise on gate scores, at most 100"
    )
    load_balance: float = Field(
        0.0, ge=0, le=1000, description="weight of the load-balancing loss, at most 1000"
    )
    dense_loss: float = Field(
        1.0,
        ge=0,
        le=1000,
        description="weight of the all-experts mixture loss that trains unpicked experts "
        "(at most 1000)",
    )
    class_balanced: bool = Field(
        True,
        description="train the gate for a uniform label prior (the global test set's) by "
        "weighting each local class equally; false trains it for the client's own label mix",
    )
    optim: OptimConfig = OptimConfig(optimizer="adam", lr=1e-3, momentum=0.0)


class StagesConfig(_Strict):
    extractor: ExtractorStageConfig = ExtractorStageConfig()
    expert: ExpertStageConfig = ExpertStageConfig()
    gate: GateStageConfig = GateStageConfig()


class LocalBaselineConfig(_Strict):
    epochs: int = Field(5, ge=1, le=10_000)
    optim: OptimConfig = OptimConfig()


class FedAvgBaselineConfig(_Strict):
    rounds: int = Field(5, ge=1, le=100_000)
    local_epochs: int = Field(1, ge=1, le=10_000)
    optim: OptimConfig = OptimConfig()


class CentralizedBaselineConfig(_Strict):
    epochs: int = Field(5, ge=1, le=10_000)
    optim: OptimConfig = OptimConfig()


class BaselinesConfig(_Strict):
    local: LocalBaselineConfig = LocalBaselineConfig()
    fedavg: FedAvgBaselineConfig = FedAvgBaselineConfig()
    centralized: CentralizedBaselineConfig = CentralizedBaselineConfig()


class DevicesConfig(_Strict):
    """Compute speeds that turn counted FLOPs into simulated seconds."""

    client_gflops: float = Field(
        20.0, ge=1e-3, le=1e7, description="sustained GFLOP/s of an edge client, 0.001..1e7"
    )
    server_gflops: float = Field(
        2000.0, ge=1e-3, le=1e7, description="sustained GFLOP/s of the server, 0.001..1e7"
    )
    classes_gflops: dict[str, float] = Field(
        default_factory=dict,
        description="GFLOP/s per topology device class, each 0.001..1e7; clients of other "
        "classes use client_gflops",
    )

    @model_validator(mode="after")
    def _positive_classes(self) -> DevicesConfig:
        bad = {k: v for k, v in self.classes_gflops.items() if not 1e-3 <= v <= 1e7}
        if bad:
            raise Invalid(
                f"devices.classes_gflops: speeds must be in 0.001..1e7, got {bad}", Severity.VALUE
            )
        return self


class StragglersConfig(_Strict):
    """Per-client slowdowns and task dropouts, all drawn from seeded streams."""

    fraction: float = Field(0.0, ge=0, le=1, description="share of clients slowed by `slowdown`")
    slowdown: float = Field(
        1.0, ge=1, le=1000, description="compute-time factor of a straggler, 1..1000"
    )
    lognormal_sigma: float = Field(
        0.0,
        ge=0,
        le=3,
        description="spread of every client's compute-time factor exp(N(0, sigma^2)), 0..3",
    )
    dropout: float = Field(
        0.0, ge=0, lt=1, description="probability a client's task is lost, decided when it ends"
    )
    availability_period_s: float | None = Field(
        None,
        ge=1e-3,
        le=1e7,
        description="clients are online one window per period (random phase each); 0.001..1e7 s",
    )
    online_fraction: float = Field(
        1.0,
        ge=1e-3,
        le=1,
        description="share of each period a client is online, 0.001..1; a task ending "
        "while its client is offline is lost",
    )


GENERATED_TOPOLOGIES = ("star", "mec", "random_geometric")

# Directed links a network may have (a topology file's, or a generator's): beyond this the graph
# alone outgrows memory, and a link-per-pair mesh is the wrong model for so many devices.
MAX_LINKS = 1_000_000


class TcpConfig(_Strict):
    """The `tcp` transport's knobs, Linux's defaults (nmoe_sim/network/transports/tcp.py)."""

    mtu_bytes: int = Field(tcp.MTU_BYTES, ge=68, le=65535, description="IP packet size")
    header_bytes: int = Field(
        tcp.HEADER_BYTES, ge=40, le=120, description="IP + TCP headers per packet (52: timestamps)"
    )
    link_header_bytes: int = Field(
        tcp.LINK_HEADER_BYTES, ge=0, le=1000, description="link framing per packet (14: Ethernet)"
    )
    initial_window_segments: int = Field(tcp.INITIAL_WINDOW_SEGMENTS, ge=1, le=10_000)
    max_window_bytes: int = Field(
        tcp.MAX_WINDOW_BYTES, ge=1024, le=2**30, description="largest window (receive buffer)"
    )
    min_rto_ms: float = Field(
        tcp.MIN_RTO_MS, ge=1, le=60_000, description="minimum RTO, 1..60000 ms"
    )
    connections: Literal["persistent", "per_message"] = Field(
        "persistent",
        description="persistent: one connection per node pair, opened once; per_message: a "
        "handshake for every message",
    )

    @model_validator(mode="after")
    def _segment_left(self) -> TcpConfig:
        if self.header_bytes >= self.mtu_bytes:
            raise ValueError(
                f"network.tcp.header_bytes ({self.header_bytes}) must be below mtu_bytes "
                f"({self.mtu_bytes}): a packet must carry some payload"
            )
        return self


class NetworkConfig(_Strict):
    """The simulated network. `ideal`: instantaneous transfers (bytes still counted)."""

    topology: str = Field(
        "ideal", description="ideal | star | mec | random_geometric | path to a topology YAML"
    )
    bandwidth_mbps: float = Field(
        20.0,
        ge=MIN_MBPS,
        le=MAX_MBPS,
        description="client access-link bandwidth both ways, 0.001..1e7 Mbit/s",
    )
    uplink_mbps: float | None = Field(
        None,
        ge=MIN_MBPS,
        le=MAX_MBPS,
        description="client access-link bandwidth from the client (star, mec), 0.001..1e7 "
        "Mbit/s; default bandwidth_mbps",
    )
    downlink_mbps: float | None = Field(
        None,
        ge=MIN_MBPS,
        le=MAX_MBPS,
        description="client access-link bandwidth to the client (star, mec), 0.001..1e7 Mbit/s; "
        "default bandwidth_mbps",
    )
    latency_ms: float = Field(
        10.0, ge=0, le=MAX_LATENCY_MS, description="client access-link latency, 0..60000 ms"
    )
    backhaul_mbps: float = Field(
        1000.0,
        ge=MIN_MBPS,
        le=MAX_MBPS,
        description="base station - cloud bandwidth (mec), 0.001..1e7 Mbit/s",
    )
    backhaul_latency_ms: float = Field(
        5.0, ge=0, le=MAX_LATENCY_MS, description="base station - cloud latency (mec), 0..60000 ms"
    )
    cells: int = Field(
        2, ge=1, description="base stations (mec), at most clients.count; clients spread evenly"
    )
    d2d_mbps: float | None = Field(
        None,
        ge=MIN_MBPS,
        le=MAX_MBPS,
        description="device-to-device links in a cell (mec), 0.001..1e7 Mbit/s",
    )
    d2d_latency_ms: float = Field(
        2.0, ge=0, le=MAX_LATENCY_MS, description="device-to-device latency (mec), 0..60000 ms"
    )
    radius: float = Field(
        0.35, ge=1e-3, le=2, description="link radius (random_geometric; unit square), 0.001..2"
    )
    loss: float = Field(
        0.0, ge=0, lt=1, description="packet loss on client links (star, mec, random_geometric)"
    )
    transport: Literal["tcp", "fluid"] = Field(
        "tcp",
        description="tcp: headers, handshakes, slow start, window and loss bounds; fluid: "
        "latency + bits / fair share",
    )
    tcp: TcpConfig = TcpConfig()
    dynamics: DynamicsConfig = DynamicsConfig()
    mobility: MobilityConfig = MobilityConfig()
    radio: RadioConfig = RadioConfig()

    @property
    def access_mbps(self) -> tuple[float, float]:
        """Client access-link bandwidth (up: from the client, down: to it)."""
        return (self.uplink_mbps or self.bandwidth_mbps, self.downlink_mbps or self.bandwidth_mbps)

    @model_validator(mode="after")
    def _keys_in_use(self, info: ValidationInfo) -> NetworkConfig:
        self._refuse_dead_keys(info)
        return self

    # The keys each network reads (besides topology); any other key set is refused.
    _USES: ClassVar[dict[str, tuple[str, ...]]] = {
        "ideal": (),
        "star": (
            "bandwidth_mbps",
            "uplink_mbps",
            "downlink_mbps",
            "latency_ms",
            "loss",
            "transport",
            "tcp",
            "dynamics",
            "mobility",
            "radio",
        ),
        "mec": (
            "bandwidth_mbps",
            "uplink_mbps",
            "downlink_mbps",
            "latency_ms",
            "backhaul_mbps",
            "backhaul_latency_ms",
            "cells",
            "d2d_mbps",
            "d2d_latency_ms",
            "loss",
            "transport",
            "tcp",
            "dynamics",
            "mobility",
            "radio",
        ),
        "random_geometric": (
            "bandwidth_mbps",
            "latency_ms",
            "radius",
            "loss",
            "transport",
            "tcp",
            "dynamics",
        ),
        "file": ("transport", "tcp", "dynamics", "mobility", "radio"),
    }

    def _refuse_dead_keys(self, info: ValidationInfo) -> None:
        kind = self.topology if self.topology in self._USES else "file"
        uses = self._USES[kind]
        keys = [k for k in type(self).model_fields if k != "topology"]
        dead = [k for k in self._set_off_default(*keys) if k not in uses]
        for key in dead:
            reason, fix = self._why_dead(kind, key)
            no_effect(info, f"network.{key}", reason, fix, ("network.topology",))
        d2d_latency = self._set_off_default("d2d_latency_ms")
        if "d2d_latency_ms" not in dead and self.d2d_mbps is None and d2d_latency:
            no_effect(
                info,
                "network.d2d_latency_ms",
                "no effect without network.d2d_mbps (no device-to-device links)",
                "set d2d_mbps or drop the key",
                ("network.d2d_mbps",),
            )
        if self.radio.enabled:  # the channel model sets the access links' rates
            for key in self._set_off_default("bandwidth_mbps", "uplink_mbps", "downlink_mbps"):
                if key not in dead:
                    no_effect(
                        info,
                        f"network.{key}",
                        "no effect with the radio model (network.radio.enabled: the access "
                        "links' rates come from it)",
                        "drop the key or turn the radio model off",
                        ("network.radio.enabled",),
                    )
        if "tcp" not in dead and self.transport != "tcp" and self._set_off_default("tcp"):
            no_effect(
                info,
                "network.tcp",
                f"no effect with transport {self.transport!r}",
                "set network.transport=tcp or drop the section",
                ("network.transport",),
            )

    def _why_dead(self, kind: str, key: str) -> tuple[str, str]:
        if kind == "ideal":
            return (
                "no effect on the ideal network (instantaneous transfers)",
                "choose a topology (star, mec, random_geometric or a topology file) or drop the "
                "key",
            )
        if kind == "file":
            return (
                f"no effect with a topology file ({self.topology}): its links carry their own "
                "numbers (bandwidth_mbps, latency_ms, loss_rate)",
                "edit the file or drop the key",
            )
        users = [t for t, u in self._USES.items() if key in u and t != "file"]
        return (
            f"no effect on the {kind} topology (used by {', '.join(users)})",
            "drop the key or choose that topology",
        )


class StalenessConfig(_Strict):
    function: Literal["constant", "polynomial", "hinge"] = "polynomial"
    a: float = Field(0.5, ge=0, le=100)
    b: int = Field(4, ge=0, le=1_000_000, description="hinge: staleness tolerated at full weight")


class ServerOptimizerConfig(_Strict):
    """The server's step along the pseudo-gradient Δ = aggregate - w that the mode's rule forms
    (Reddi et al. 2021), in every mode. Keys the chosen optimizer does not take are ignored."""

    name: Literal["fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad"] = Field(
        "fedavg", description="fedavg with lr 1 is plain FedAvg / FedAsync / FedBuff"
    )
    lr: float | None = Field(
        None,
        ge=1e-8,
        le=100,
        allow_inf_nan=False,
        description="server step size, 1e-8..100; default 1.0 (fedavg, fedavgm), 0.01 (adaptive "
        "ones)",
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="fedavgm: server momentum")
    beta1: float = Field(
        0.9, ge=0, lt=1, description="fedadam, fedyogi, fedadagrad: first-moment decay"
    )
    beta2: float = Field(0.99, ge=0, lt=1, description="fedadam, fedyogi: second-moment decay")
    tau: float = Field(
        1e-3,
        ge=1e-12,
        le=10,
        allow_inf_nan=False,
        description="adaptive optimizers: adaptivity, 1e-12..10",
    )


class FederationConfig(_Strict):
    """When clients work: synchronous rounds, FedAsync or FedBuff (stage 1, FedAvg, FedGate)."""

    mode: Literal["sync", "fedasync", "fedbuff"] = "sync"
    clients_per_round: int | None = Field(
        None, ge=1, description="default: every client; at most clients.count"
    )
    over_selection: float = Field(0.0, ge=0, le=10, description="sync: extra share selected")
    deadline_s: float | None = Field(
        None, ge=1e-3, le=1e7, description="sync: uploads later than this drop, 0.001..1e7 s"
    )
    concurrency: int | None = Field(
        None, ge=1, description="async: clients training at once, at most clients.count"
    )
    mixing: float = Field(
        0.6, ge=1e-4, le=1, description="fedasync: alpha of the mixing step, 0.0001..1"
    )
    staleness: StalenessConfig = StalenessConfig()
    buffer_size: int = Field(5, ge=1, le=1_000_000, description="fedbuff: updates per aggregation")
    max_staleness: int | None = Field(
        None, ge=0, le=1_000_000, description="async: staler updates drop"
    )
    server_optimizer: ServerOptimizerConfig = ServerOptimizerConfig()
    evaluate_every: int = Field(
        1,
        ge=1,
        le=100_000,
        description="score the global model after every this many rounds, and after the last",
    )

    # The keys only some modes read; clients_per_round and server_optimizer serve every mode.
    _MODE_KEYS: ClassVar[dict[str, tuple[str, ...]]] = {
        "over_selection": ("sync",),
        "deadline_s": ("sync",),
        "concurrency": ("fedasync", "fedbuff"),
        "max_staleness": ("fedasync", "fedbuff"),
        "staleness": ("fedasync", "fedbuff"),
        "mixing": ("fedasync",),
        "buffer_size": ("fedbuff",),
    }

    @model_validator(mode="after")
    def _mode_keys(self, info: ValidationInfo) -> FederationConfig:
        for key in self._set_off_default(*self._MODE_KEYS):
            modes = self._MODE_KEYS[key]
            if self.mode not in modes:
                no_effect(
                    info,
                    f"federation.{key}",
                    f"no effect in mode {self.mode!r} (used by {' and '.join(modes)})",
                    "set federation.mode or drop the key",
                    ("federation.mode",),
                )
        st = self.staleness
        used = {"constant": (), "polynomial": ("a",), "hinge": ("a", "b")}[st.function]
        if self.mode != "sync":
            for key in [k for k in st._set_off_default("a", "b") if k not in used]:
                no_effect(
                    info,
                    f"federation.staleness.{key}",
                    f"no effect with the {st.function} staleness function (a: polynomial and "
                    "hinge; b: hinge)",
                    "drop the key",
                    ("federation.staleness.function",),
                )
        return self

    @model_validator(mode="before")
    @classmethod
    def _server_lr_moved(cls, data: Any) -> Any:
        # One key sets the server's step size in every mode; old FedBuff scenarios are told
        # where it went rather than silently running with a default.
        if isinstance(data, dict) and "server_lr" in data:
            raise Invalid(
                "federation.server_lr: replaced by federation.server_optimizer.lr, which sets "
                "the server step in every mode (with the default optimizer, fedavg, FedBuff "
                "steps w + lr * mean delta as before); write "
                f"federation.server_optimizer.lr={data['server_lr']} instead",
                Severity.UNKNOWN,
            )
        return data


class RuntimeConfig(_Strict):
    """Where client work runs: in this process (debugging, fast tests) or in Ray actors."""

    backend: Literal["inprocess", "ray"] = "inprocess"
    device: Literal["cpu", "cuda", "auto"] = "auto"
    torch_threads: int | None = Field(
        None, ge=1, le=1024, description="threads of this process (inprocess); default: all cores"
    )
    cpus_per_client: float = Field(
        1.0,
        ge=0.01,
        le=1024,
        description="ray: CPUs reserved by each actor (one client task at a time), 0.01..1024",
    )
    gpus_per_client: float = Field(
        0.0,
        ge=0,
        le=64,
        description="ray: GPU share of each actor, e.g. 0.25 puts four on one GPU (at most 64)",
    )
    max_actors: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="ray: actors hosting the clients; default: what the cluster fits",
    )
    ray_address: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="ray: join this cluster (e.g. ray://host:10001 or auto); default: local",
    )
    dashboard: bool = Field(False, description="ray: start the dashboard with a local cluster")

    _RAY_ONLY: ClassVar[tuple[str, ...]] = (
        "gpus_per_client",
        "max_actors",
        "ray_address",
        "dashboard",
    )

    @model_validator(mode="after")
    def _ray_only_keys(self, info: ValidationInfo) -> RuntimeConfig:
        if self.backend != "ray":
            for key in self._RAY_ONLY:
                if getattr(self, key) != type(self).model_fields[key].default:
                    no_effect(
                        info,
                        f"runtime.{key}",
                        f"no effect without runtime.backend: ray (got backend {self.backend!r})",
                        "set runtime.backend=ray or drop the key",
                        ("runtime.backend",),
                    )
        if self.backend == "ray" and self.device == "cuda" and self.gpus_per_client == 0:
            raise ValueError(
                "runtime.device: cuda with the ray backend needs runtime.gpus_per_client > 0 "
                "(actors see only the GPUs they hold); set it, e.g. 0.25, or use device auto"
            )
        if self.gpus_per_client > 1 and not self.gpus_per_client.is_integer():
            raise ValueError(
                f"runtime.gpus_per_client: {self.gpus_per_client} is neither a fraction of one "
                "GPU nor a whole number of GPUs; use e.g. 0.25 or 2"
            )
        return self


class InferenceConfig(_Strict):
    """The serving stage after training: Poisson queries at every client, routed by its gate to
    expert hosts over the network (NMoE methods only)."""

    enabled: bool = Field(False, description="serve queries after training (NMoE methods)")
    rate_qps: float = Field(
        10.0,
        ge=1e-6,
        le=1e6,
        description="Poisson arrival rate of queries at each client, 1e-6..1e6 per second",
    )
    queries_per_client: int = Field(
        200, ge=1, le=1_000_000, description="queries each client sends (the run's length)"
    )
    deadline_ms: float | None = Field(
        None,
        ge=1e-3,
        le=1e9,
        description="experts not back this long after the query arrived are left out of the "
        "mixture (weights renormalised); none back: the own expert answers; 0.001..1e9 ms. "
        "Default: wait for all",
    )
    latency_weight: float = Field(
        0.0,
        ge=0,
        le=1e6,
        description="gate-score penalty per ms of an expert's expected round trip; 0 = the "
        "paper's gate",
    )
    service: Literal["deterministic", "exponential"] = Field(
        "deterministic",
        description="expert service time: the expert's FLOPs over the host's speed, or "
        "exponential with that mean",
    )
    top_k: int | None = Field(
        None, ge=1, description="experts asked per query; default stages.gate.top_k"
    )
    queries_from: Literal["own", "global"] = Field(
        "own",
        description="where a client's queries come from: its own test split (its label mix) "
        "or the balanced global test set (the paper's metric)",
    )


class OutputConfig(_Strict):
    dir: Path | None = Field(None, description="run directory; default runs/<name>-<timestamp>")
    plots: bool = True


class Scenario(_Strict):
    name: str = Field(
        "scenario",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="letters, digits, _ . - (at most 100): names the run folder",
    )
    seed: int = Field(0, ge=0, lt=2**32)
    methods: list[str] = Field(default_factory=lambda: list(PAPER_METHODS), min_length=1)
    dataset: DatasetConfig = DatasetConfig()
    partition: PartitionConfig = PartitionConfig()
    clients: ClientsConfig = ClientsConfig()
    model: ModelConfig = ModelConfig()
    stages: StagesConfig = StagesConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    devices: DevicesConfig = DevicesConfig()
    stragglers: StragglersConfig = StragglersConfig()
    network: NetworkConfig = NetworkConfig()
    federation: FederationConfig = FederationConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    inference: InferenceConfig = InferenceConfig()
    output: OutputConfig = OutputConfig()

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        unknown = [m for m in methods if m not in ALL_METHODS]
        if unknown:
            raise Invalid(
                f"methods: unknown {unknown}; allowed: {', '.join(ALL_METHODS)}", Severity.UNKNOWN
            )
        if len(set(methods)) != len(methods):
            raise ValueError("methods: listed twice; name each method once")
        return methods

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        # Every check runs: a scenario is refused with all of its conflicts at once.
        found = []
        for check in (
            self._check_top_k,
            self._check_remote_experts,
            self._check_per_round,
            self._check_cells,
            self._check_d2d_mesh,
            self._check_data_sizes,
        ):
            try:
                check()
            except ValueError as exc:
                found.append(str(exc))
        if found:
            raise Invalid("\n".join(found), Severity.CONFLICT)
        return self

    def _gated(self) -> bool:
        """Whether some method trains a gate (whose top_k then matters)."""
        return any(m.startswith("nmoe/") and parse_nmoe(m).trains_gate for m in self.methods)

    def _check_top_k(self) -> None:
        n = self.clients.count
        if self._gated() and self.stages.gate.top_k > n:
            raise ValueError(
                f"stages.gate.top_k: {self.stages.gate.top_k} exceeds clients.count ({n}); "
                f"choose 1..{n}"
            )
        k = self.inference.top_k
        if k is not None and k > n:
            raise ValueError(
                f"inference.top_k: {k} exceeds clients.count ({n}); choose 1..{n} (or leave it "
                "out to use stages.gate.top_k)"
            )

    def _check_per_round(self) -> None:
        n = self.clients.count
        for key in ("clients_per_round", "concurrency"):
            value = getattr(self.federation, key)
            if value is not None and value > n:
                raise ValueError(
                    f"federation.{key}: {value} exceeds clients.count ({n}); choose 1..{n} "
                    "(or leave it out: every client)"
                )

    def _check_cells(self) -> None:
        n = self.clients.count
        if self.network.topology == "mec" and self.network.cells > n:
            raise ValueError(
                f"network.cells: {self.network.cells} cells for clients.count={n} leaves cells "
                f"without clients; choose 1..{n}"
            )

    def _check_d2d_mesh(self) -> None:
        """mec's d2d links join every pair of clients in a cell: quadratic in the cell's size."""
        net, n = self.network, self.clients.count
        if net.topology != "mec" or net.d2d_mbps is None or net.cells > n:
            return  # (more cells than clients: _check_cells)

        def mesh_links(cells: int) -> int:
            per_cell = -(-n // cells)
            return cells * per_cell * (per_cell - 1)

        links, per_cell = mesh_links(net.cells), -(-n // net.cells)
        if links > MAX_LINKS:
            fits = next(c for c in range(net.cells, n + 1) if mesh_links(c) <= MAX_LINKS)
            raise ValueError(
                f"network.d2d_mbps: a device-to-device link between every pair of clients in "
                f"each of {net.cells} cells of {per_cell} is {links:,} directed links (at most "
                f"{MAX_LINKS:,}); use at least {fits} cells (network.cells), or drop d2d_mbps"
            )

    def _check_remote_experts(self) -> None:
        """A client reaches its own expert plus `remote_experts` others: no top k beyond that."""
        m, n = self.stages.gate.remote_experts, self.clients.count
        if m is None:
            return
        if m > n - 1:
            raise ValueError(
                f"stages.gate.remote_experts: {m} exceeds the other clients (clients.count - 1 = "
                f"{n - 1}); choose 1..{n - 1} (or leave it out: every other client)"
            )
        for key, k in (
            ("stages.gate.top_k", self.stages.gate.top_k if self._gated() else None),
            ("inference.top_k", self.inference.top_k),
        ):
            if k is not None and k > m + 1:
                raise ValueError(
                    f"{key}: {k} exceeds the experts a client reaches with "
                    f"stages.gate.remote_experts={m} (its own + {m}); lower {key} to at most "
                    f"{m + 1} or raise stages.gate.remote_experts to at least {k - 1}"
                )

    def _check_data_sizes(self) -> None:
        """What the partition needs from the data, checked before anything is loaded."""
        ds, part, n = self.dataset, self.partition, self.clients.count
        if ds.name not in DATASET_SIZES:
            return
        train_size, test_size = DATASET_SIZES[ds.name]
        limit = "" if ds.name == "synthetic" else f" ({ds.name} has {train_size:,})"
        for key, wanted, have in (
            ("train_samples", ds.train_samples, train_size),
            ("test_samples", ds.test_samples, test_size),
        ):
            if wanted is not None and wanted > have:
                what = "generated at most" if ds.name == "synthetic" else "available"
                raise ValueError(
                    f"dataset.{key}: {wanted:,} exceeds the {have:,} samples {what} for "
                    f"{ds.name}; choose 1..{have:,}"
                )
        samples = ds.train_samples if ds.train_samples is not None else train_size
        if ds.name == "synthetic" and ds.train_samples is None:
            samples = SYNTHETIC_TRAIN_DEFAULT
        fewest = samples // n
        if part.scheme == "shards":
            shards = n * part.classes_per_client
            if shards > samples:
                raise ValueError(
                    f"partition.classes_per_client: {n} clients x {part.classes_per_client} "
                    f"shards = {shards:,} shards exceed the {samples:,} train samples; lower "
                    "classes_per_client or clients.count, or raise dataset.train_samples"
                )
            fewest = (samples // shards) * part.classes_per_client
        if part.scheme == "dirichlet":
            fewest = samples // n  # the most every client can get at once; draws give less
        if fewest < part.min_samples:
            raise ValueError(
                f"partition.min_samples: {samples:,} train samples{limit} over clients.count="
                f"{n} give a client {fewest} (scheme {part.scheme}), fewer than min_samples="
                f"{part.min_samples}; raise dataset.train_samples to at least "
                f"{n * part.min_samples:,}, lower clients.count to "
                f"{max(samples // part.min_samples, 1):,} or lower partition.min_samples"
            )


_MAX_SCENARIO_BYTES = 1_000_000
_EMPTY = object()  # read_yaml's marker for a file without a document


def _shown(value: Any) -> str:
    """A user value in a message: its repr, cut short (a value may be a whole expanded section)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text):,} characters)"


# Pydantic's error types for a key or a name the schema does not know.
_UNKNOWN_TYPES = ("extra_forbidden", "literal_error", "enum")


def _problems(err: ValidationError) -> list[Problem]:
    """Each of pydantic's errors as a Problem: its message (naming the dotted key) and severity."""
    out = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<scenario>"
        got = f"(got {_shown(e.get('input'))})"
        if e["type"] == "value_error":
            # Our own checks: messages start with the key path; a check that runs every
            # conflict check puts one per line.
            exc = e["ctx"]["error"]
            severity = getattr(exc, "severity", None)
            if severity is None:
                severity = Severity.CONFLICT if _is_section(e["loc"]) else Severity.VALUE
            for message in str(exc).split("\n"):
                out.append(Problem(severity, message, leading_key(message) or path))
        elif e["type"] == "extra_forbidden":
            message = f"{path}: unknown key; {_allowed_keys(e['loc'])}"
            out.append(Problem(Severity.UNKNOWN, message, path))
        elif e["type"] == "finite_number":
            message = f"{path}: must be a finite number, not NaN or infinity {got}"
            out.append(Problem(Severity.VALUE, message, path))
        else:
            severity = Severity.UNKNOWN if e["type"] in _UNKNOWN_TYPES else Severity.VALUE
            out.append(Problem(severity, f"{path}: {e['msg']} {got}", path))
    return out


def _section(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema section at `loc` (the whole scenario for ()), or None for a value."""
    model: type[BaseModel] = Scenario
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _is_section(loc: tuple[Any, ...]) -> bool:
    return _section(loc) is not None


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    model = _section(loc[:-1])
    if model is None:
        return "check the spelling"
    return "allowed here: " + ", ".join(model.model_fields)


def refusal(problems: list[Problem]) -> ScenarioError:
    """All of a scenario's problems in one error, the most fundamental first."""
    kept = ordered(problems)
    lines = "\n  ".join(p.message for p in kept)
    return ScenarioError(f"invalid scenario:\n  {lines}", kept[0].severity if kept else None)


TOPOLOGY_NAMES = ("ideal", *GENERATED_TOPOLOGIES)


def topology_source_problem(topology: str) -> Problem | None:
    """A `network.topology` that names neither a built-in network nor an existing file."""
    if topology in TOPOLOGY_NAMES:
        return None
    path = Path(topology)
    try:
        if path.is_file():
            return None
        folder = path.is_dir()
    except (OSError, ValueError):  # e.g. a name too long for the file system, or a NUL byte
        folder = False
    choose = f"choose {', '.join(TOPOLOGY_NAMES)} or the path of a topology YAML file"
    key = "network.topology"
    if folder:
        message = f"{key}: {topology!r} is a folder, not a topology file; {choose}"
        return Problem(Severity.UNREADABLE, message, key)
    if "/" in topology or path.suffix in (".yaml", ".yml"):
        message = f"{key}: topology file {topology!r} not found; {choose}"
        return Problem(Severity.UNREADABLE, message, key)
    return Problem(Severity.UNKNOWN, f"{key}: unknown {topology!r}; {choose}", key)


def parse_value(text: str, where: str) -> Any:
    """A `--set` / `--grid` value read as YAML (0.1 a float, [1, 2] a list), with the bounded
    loader's limits (nesting, aliases, digits); refusals name `where`."""
    try:
        return load_text(text, where)
    except YamlInputError as exc:
        if exc.syntax:  # PyYAML's multi-line report, on one line
            detail = " ".join(exc.detail.split())
            raise ScenarioError(
                f"{where}: value {_shown(text)} is not valid YAML ({detail})"
            ) from None
        raise ScenarioError(f"{where}: value {_shown(text)}: {exc.detail}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=VALUE` -> (["a", "b", "c"], VALUE parsed as YAML, so 0.1 is a float, [1,2] a list)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ScenarioError(
            f"--set {_shown(text)}: expected KEY=VALUE with a dotted key, e.g. partition.alpha=0.1"
        )
    path = key.strip().split(".")
    if len(path) > 8 or any(not part.strip() for part in path):
        raise ScenarioError(
            f"--set {_shown(key.strip())}: not a dotted key of the scenario (e.g. "
            "partition.alpha); keys are names joined by single dots, at most 8 deep"
        )
    value = parse_value(raw, f"--set {key.strip()}") if raw.strip() else raw
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(path[: i + 1])
                raise ScenarioError(f"--set {'.'.join(path)}: {where} is a value, not a section")
            node = child
        node[path[-1]] = value
    return raw


def read_yaml(path: Path) -> dict[str, Any]:
    """A scenario file's mapping; refused unless it is a UTF-8 YAML mapping within the bounded
    loader's limits (safe_yaml.py): no duplicate keys, alias bombs, deep nesting or huge
    integers."""
    if not path.is_file():
        raise ScenarioError(f"scenario file not found: {path}")
    try:
        raw = load_text(read_text(path, "scenario", _MAX_SCENARIO_BYTES), str(path), _EMPTY)
    except YamlInputError as exc:
        raise ScenarioError(str(exc)) from None
    if raw is _EMPTY:
        raise ScenarioError(
            f"empty scenario: {path} (no keys; write at least `name: ...`, or {{}} for every "
            "default)"
        )
    if not isinstance(raw, dict):
        kind = "null" if raw is None else type(raw).__name__
        raise ScenarioError(f"{path}: a scenario is a mapping of keys, got {kind}")
    return raw


@dataclass
class LoadedScenario:
    """A scenario file with its overrides, validated: the scenario (None where the schema refused
    it), every problem found, and the keys the file set that an override made inert (ignored)."""

    source: Path
    scenario: Scenario | None
    problems: list[Problem]
    ignored: list[NoEffect]
    topology: str | None  # network.topology as given (a name or a file), where it is a string

    def notes(self) -> list[str]:
        """One line per reason the file's keys are ignored (none where that reason is moot)."""
        keys: dict[str, list[str]] = {}
        for f in self.ignored:
            if not is_moot(f.decided_by, self.problems, Severity.NO_EFFECT):
                keys.setdefault(f.reason, []).append(f.key)
        return [
            f"{', '.join(ks)} (set in {self.source.name}) {'is' if len(ks) == 1 else 'are'} "
            f"ignored: {reason}"
            for reason, ks in keys.items()
        ]

    def valid(self) -> Scenario:
        """The scenario, or ScenarioError with every problem."""
        if self.problems or self.scenario is None:
            raise refusal(self.problems)
        return self.scenario


def collect_scenario(
    path: Path, overrides: list[str] | None = None, seed: int | None = None
) -> LoadedScenario:
    """Read, override and validate a scenario, collecting its problems; raises ScenarioError only
    when there is nothing to validate (an unreadable file, a malformed --set).

    A key that does nothing where it is set is ignored when the file sets it and a --set (or
    --seed) chose the value that makes it inert: `--set network.topology=star` runs a mec
    scenario on a star. One the user set on the command line, or one the file sets together
    with that value, is a problem."""
    overrides = list(overrides or [])
    raw = apply_overrides(read_yaml(path), overrides)
    cli = [".".join(parse_override(text)[0]) for text in overrides]
    if seed is not None:
        raw["seed"] = seed
        cli.append("seed")
    ignored: list[NoEffect] = []
    while True:  # ends: every round drops a key of `raw`
        scenario, problems, findings = _validate(raw)
        dropped = [f for f in findings if _inert_by_override(f, cli) and _drop(raw, f.key)]
        if not dropped:
            break
        ignored += dropped
    problems += [f.problem() for f in findings]
    topology = _topology(raw)
    found = topology_source_problem(topology) if topology is not None else None
    if found is not None:
        problems.append(found)
    return LoadedScenario(path, scenario, problems, ignored, topology)


def _validate(raw: dict[str, Any]) -> tuple[Scenario | None, list[Problem], list[NoEffect]]:
    findings: list[NoEffect] = []
    try:
        return Scenario.model_validate(raw, context={NO_EFFECT: findings}), [], findings
    except ValidationError as err:
        return None, _problems(err), findings


def _inert_by_override(finding: NoEffect, cli: list[str]) -> bool:
    """The file set the key (no --set touched it) and a --set chose what makes it inert."""
    set_on_cli = any(within(finding.key, [k]) or within(k, [finding.key]) for k in cli)
    return not set_on_cli and any(within(d, cli) for d in finding.decided_by)


def _drop(raw: dict[str, Any], key: str) -> bool:
    *parents, last = key.split(".")
    node: Any = raw
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or last not in node:
        return False
    del node[last]
    return True


def _topology(raw: dict[str, Any]) -> str | None:
    network = raw.get("network")
    topology = network.get("topology") if isinstance(network, dict) else None
    return topology if isinstance(topology, str) else None


def load_scenario(
    path: Path,
    overrides: list[str] | None = None,
    seed: int | None = None,
    notes: list[str] | None = None,
) -> Scenario:
    """The validated scenario of a file and its overrides, or ScenarioError listing every
    problem; `notes` receives a line per group of file keys the overrides made inert."""
    loaded = collect_scenario(path, overrides, seed)
    scenario = loaded.valid()
    if notes is not None:
        notes.extend(loaded.notes())
    return scenario
