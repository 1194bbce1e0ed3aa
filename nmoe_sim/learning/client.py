"""What an edge client computes, stage by stage.

A client's state (its data, features, expert, gate copies) lives wherever the execution backend
hosts it; every task below is a plain function `task(state, ...) -> result` that the backend runs
against that state. Tasks know nothing about time, the network or where they run.
Randomness comes only from the `seed` each task is given.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from nmoe_sim.config import OptimConfig
from nmoe_sim.data.augment import two_views
from nmoe_sim.learning.access import Access, task
from nmoe_sim.learning.loops import cpu_state, fit, predict
from nmoe_sim.learning.losses import mixture_nll, nt_xent
from nmoe_sim.models.gate import TRUNK_PREFIX, load_balance_loss, noisy_scores, top_k_weights
from nmoe_sim.models.gate import mix as mix_experts
from nmoe_sim.models.spec import ModelSpec

Weights = dict[str, torch.Tensor]


@dataclass
class Update:
    """A client's answer to a training task."""

    weights: Weights
    num_samples: int
    loss: float


@dataclass
class ClientState:
    client_id: int
    spec: ModelSpec
    train_x: torch.Tensor
    train_y: torch.Tensor
    device: str = "cpu"
    # Per extractor pipeline ("nmoe/fedsc", ...): frozen features of the local train set,
    # this client's expert, and the probabilities of every expert on the local train features.
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    experts: dict[str, nn.Module] = field(default_factory=dict)
    expert_probs: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)
    # Per gating method: this client's copy of the gate (FedGate keeps its output layer here).
    gates: dict[str, Weights] = field(default_factory=dict)

    @property
    def num_train(self) -> int:
        return int(self.train_y.shape[0])

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)


def _init_or_load(model: nn.Module, weights: Weights | None, seed: int) -> nn.Module:
    if weights is None:
        # Fresh weights from this task's seed: the same on every backend and process.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for m in model.modules():
                reset = getattr(m, "reset_parameters", None)
                if reset is not None:
                    reset()
    else:
        model.load_state_dict(weights)
    return model


@functools.lru_cache(maxsize=8)
def _scratch_model(spec: ModelSpec, kind: str) -> nn.Module:
    """One model object per kind and process, reused by every training task: tasks run one at a
    time in a process (in-process backend, each Ray actor), every task overwrites all parameters
    and buffers (`_init_or_load`) and makes its own optimizer, and results leave as copies
    (`cpu_state`). Building a model anew costs its default initialisation each time: with tens
    of samples per client that is a sizeable share of a task."""
    return {"classifier": spec.build_classifier, "contrastive": spec.build_contrastive}[kind]()


def fresh_weights(model: nn.Module, seed: int) -> Weights:
    """Seeded initial weights, e.g. the server's initial global model."""
    return cpu_state(_init_or_load(model, None, seed))


# Stage 1 and baselines -------------------------------------------------------------------


@task(Access.DATA)
def fit_classifier(
    state: ClientState, weights: Weights | None, optim: OptimConfig, epochs: int, seed: int
) -> Update:
    """Supervised local training of extractor + linear head (FedCE, FedAvg, local baseline)."""
    model = _init_or_load(_scratch_model(state.spec, "classifier"), weights, seed)
    gen = torch.Generator().manual_seed(seed)

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(m(x), y)

    loss = fit(
        model, (state.train_x, state.train_y), loss_fn, optim, epochs, gen, state.torch_device
    )
    return Update(cpu_state(model), state.num_train, loss)


@dataclass(frozen=True)
class ContrastiveSettings:
    temperature: float
    crop_scale_min: float
    jitter: float


@task(Access.DATA)
def fit_contrastive(
    state: ClientState,
    weights: Weights | None,
    optim: OptimConfig,
    epochs: int,
    settings: ContrastiveSettings,
    seed: int,
) -> Update:
    """FedSC local step: SimCLR on two augmented views of each local image; labels unused."""
    model = _init_or_load(_scratch_model(state.spec, "contrastive"), weights, seed)
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator().manual_seed(seed + 1)

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (x,) = batch
        v1, v2 = two_views(
            x.cpu(), aug_gen, crop_scale=(settings.crop_scale_min, 1.0), jitter=settings.jitter
        )
        return nt_xent(m(v1.to(x.device)), m(v2.to(x.device)), settings.temperature)

    loss = fit(model, (state.train_x,), loss_fn, optim, epochs, gen, state.torch_device)
    return Update(cpu_state(model), state.num_train, loss)


# Stage 2 ---------------------------------------------------------------------------------


@task(Access.WRITE)
def embed(state: ClientState, pipeline: str, extractor_weights: Weights) -> int:
    """Compute the frozen extractor's features of the local train set once; returns their count."""
    extractor = state.spec.build_extractor()
    extractor.load_state_dict(extractor_weights)
    state.features[pipeline] = predict(extractor, state.train_x, state.torch_device)
    return state.num_train


def _train_expert(
    spec: ModelSpec,
    h: torch.Tensor,
    y: torch.Tensor,
    optim: OptimConfig,
    epochs: int,
    seed: int,
    device: torch.device,
) -> tuple[nn.Module, float]:
    expert = _init_or_load(spec.build_expert(), None, seed)

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        hb, yb = batch
        return F.cross_entropy(m(hb), yb)

    loss = fit(expert, (h, y), loss_fn, optim, epochs, torch.Generator().manual_seed(seed), device)
    return expert.eval(), loss


@task(Access.WRITE)
def fit_expert(
    state: ClientState, pipeline: str, optim: OptimConfig, epochs: int, folds: int, seed: int
) -> float:
    """Train this client's personalized expert on its own features (no communication), and
    record the own expert's class probabilities on the local train set for the gate.

    With `folds > 1` those probabilities are out-of-fold (each sample scored by an expert trained
    without it), so the gate sees how the own expert does on unseen data, as it sees the remote
    experts; otherwise they are the final expert's outputs on its own training data.
    """
    h, y, device = state.features[pipeline], state.train_y, state.torch_device
    expert, loss = _train_expert(state.spec, h, y, optim, epochs, seed, device)
    state.experts[pipeline] = expert
    if folds <= 1:
        own = torch.softmax(predict(expert, h, device), dim=1)
    else:
        order = torch.randperm(state.num_train, generator=torch.Generator().manual_seed(seed + 1))
        own = torch.empty(state.num_train, state.spec.num_classes)
        for k, held_out in enumerate(order.tensor_split(folds)):
            keep = torch.ones(state.num_train, dtype=torch.bool)
            keep[held_out] = False
            fold_expert, _ = _train_expert(
                state.spec, h[keep], y[keep], optim, epochs, seed + 2 + k, device
            )
            own[held_out] = torch.softmax(predict(fold_expert, h[held_out], device), dim=1)
    store_expert_probs(state, pipeline, state.client_id, own)
    return loss


@task(Access.READ)
def expert_weights(state: ClientState, pipeline: str) -> Weights:
    return cpu_state(state.experts[pipeline])


@dataclass
class SharedStages:
    """What stages 1-2 of one pipeline leave in a client's state: kept by a checkpoint so a
    resumed run restores them instead of training again."""

    features: torch.Tensor  # the frozen extractor's features of the local train set
    expert: Weights  # this client's personalized expert
    own_probs: torch.Tensor  # the own expert's class probabilities on the local train set


@task(Access.READ)
def shared_stages(state: ClientState, pipeline: str) -> SharedStages:
    expert = cpu_state(state.experts[pipeline])
    own = state.expert_probs[pipeline][state.client_id]
    return SharedStages(state.features[pipeline], expert, own)


@task(Access.WRITE)
def restore_shared_stages(state: ClientState, pipeline: str, saved: SharedStages) -> None:
    """Put back what `shared_stages` read (WRITE: the Ray backend replays it on a new host)."""
    state.features[pipeline] = saved.features
    expert = state.spec.build_expert()
    expert.load_state_dict(saved.expert)
    state.experts[pipeline] = expert.eval()
    state.expert_probs[pipeline] = {state.client_id: saved.own_probs}


# Stage 3 ---------------------------------------------------------------------------------


@task(Access.READ)
def train_features(state: ClientState, pipeline: str) -> torch.Tensor:
    """The features this client sends to remote experts."""
    return state.features[pipeline]


@task(Access.READ)
def serve_expert(state: ClientState, pipeline: str, features: torch.Tensor) -> torch.Tensor:
    """This client's expert answering a batch of features: class probabilities."""
    return torch.softmax(predict(state.experts[pipeline], features, state.torch_device), dim=1)


@task(Access.WRITE)
def store_expert_probs(
    state: ClientState, pipeline: str, expert_id: int, probs: torch.Tensor
) -> None:
    state.expert_probs.setdefault(pipeline, {})[expert_id] = probs


@dataclass(frozen=True)
class GateSettings:
    top_k: int
    routing_noise: float
    load_balance: float
    class_balanced: bool = False
    dense_loss: float = 0.0


def balanced_sample_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Weights making every class present locally count equally (mean weight one)."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    present = int((counts > 0).sum())
    per_class = torch.where(counts > 0, labels.numel() / (present * counts.clamp_min(1)), 0.0)
    return per_class[labels]


@task(Access.WRITE)
def fit_gate(
    state: ClientState,
    pipeline: str,
    method: str,
    incoming: Weights | None,
    optim: OptimConfig,
    epochs: int,
    settings: GateSettings,
    seed: int,
    experts: tuple[int, ...] | None = None,
) -> Update:
    """Fine-tune the gate on local data with frozen features and experts.

    `incoming` is merged into this client's own copy (for FedGate it holds only the shared trunk,
    so the client's output layer persists across rounds). The full gate is kept in the state.
    `experts`: the only experts the gate may route to (their outputs were exchanged); None: all.
    """
    gate = _init_or_load(state.spec.build_gate(), state.gates.get(method), seed)
    if incoming is not None:
        gate.load_state_dict({**gate.state_dict(), **incoming})
    cached = state.expert_probs[pipeline]
    reach = range(state.spec.num_experts) if experts is None else experts
    probs = torch.stack([cached[e] for e in reach], dim=1)
    # The gate's scores of the reachable experts only, in the order of `probs`' columns.
    index = None if experts is None else torch.tensor(experts, device=state.torch_device)
    gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator().manual_seed(seed + 1)

    if settings.class_balanced:
        sample_weight = balanced_sample_weights(state.train_y, state.spec.num_classes)
    else:
        sample_weight = torch.ones(state.num_train)

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        h, p, y, w = batch
        scores = m(h) if index is None else m(h).index_select(-1, index)
        weights = top_k_weights(
            noisy_scores(scores, settings.routing_noise, noise_gen), settings.top_k
        )
        loss = mixture_nll(mix_experts(weights, p), y, w)
        if settings.dense_loss > 0:
            # Top-k weights depend only on the kept scores (with k = 1 they are constant), so an
            # expert outside the top k would never be learnt; the dense mixture reaches them all.
            dense = torch.softmax(scores, dim=-1)
            loss = loss + settings.dense_loss * mixture_nll(mix_experts(dense, p), y, w)
        if settings.load_balance > 0:
            loss = loss + settings.load_balance * load_balance_loss(scores, weights)
        return loss

    loss = fit(
        gate,
        (state.features[pipeline], probs, state.train_y, sample_weight),
        loss_fn,
        optim,
        epochs,
        gen,
        state.torch_device,
    )
    state.gates[method] = cpu_state(gate)
    return Update(cpu_state(gate), state.num_train, loss)


@task(Access.READ)
def gate_weights(state: ClientState, method: str) -> Weights | None:
    return state.gates.get(method)


@task(Access.WRITE)
def adopt_gate(
    state: ClientState, method: str, weights: Weights, base: Weights | None = None
) -> None:
    """Take received gate weights (all of them, or FedGate's trunk) over this client's copy, or
    over `base` if the client holds none yet."""
    state.gates[method] = {**(state.gates.get(method) or base or {}), **weights}


def trunk_only(weights: Weights) -> Weights:
    """The part of the gate FedGate shares."""
    return {k: v for k, v in weights.items() if k.startswith(TRUNK_PREFIX)}
