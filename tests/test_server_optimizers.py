"""Server optimizers against steps computed by hand, the rules' use of them, and their config.

Every expected number below is worked out in the comments from the formulas of Reddi et al.
2021 (Algorithm 2: no bias correction, v starts at tau^2, m at 0), not taken from the code.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path

import pytest
import torch

from nmoe_sim.config import FederationConfig, ScenarioError, ServerOptimizerConfig, load_scenario
from nmoe_sim.federation import server_optimizers
from nmoe_sim.federation.aggregate import Weights, weighted_average
from nmoe_sim.federation.rules import Buffered, Mixing, WeightedMean
from nmoe_sim.federation.server_optimizers import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedYogi,
    ServerOptimizer,
)
from nmoe_sim.learning.client import Update
from nmoe_sim.pipelines.federate import server_rule

F64 = torch.float64


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def two_steps(opt: ServerOptimizer, d1: torch.Tensor, d2: torch.Tensor) -> tuple[list, list]:
    """The weights after one and after two steps from w = 0, each step given its Δ."""
    w0 = {"w": torch.zeros_like(d1)}
    w1 = opt.step(w0, {"w": d1})
    w2 = opt.step(w1, {"w": d2})
    return w1["w"].tolist(), w2["w"].tolist()


def close(got: list[float], expected: list[float]) -> bool:
    return got == pytest.approx(expected, rel=1e-12, abs=1e-15)


# -- each optimizer's step ---------------------------------------------------------------------


def test_fedavg_steps_lr_times_the_pseudo_gradient() -> None:
    # w = [1, -2], Δ = [0.5, 4], lr 0.5: w + 0.5 Δ = [1.25, 0].
    out = FedAvg(lr=0.5).step({"w": torch.tensor([1.0, -2.0])}, {"w": t(0.5, 4.0)})
    assert torch.equal(out["w"], torch.tensor([1.25, 0.0]))
    assert out["w"].dtype == torch.float32  # computed in float64, cast back


def test_fedavg_at_lr_one_adopts_the_aggregate_itself() -> None:
    current = {"w": t(0.1, 0.2)}
    aggregate = {"w": t(0.3, 0.7), "n": torch.tensor(9)}
    # Not w + (aggregate - w), which may differ in the last bit: the very same tensors.
    assert FedAvg().toward(current, aggregate) is aggregate


def test_toward_steps_floats_and_keeps_the_aggregates_integer_buffers() -> None:
    current = {"w": t(1.0, 2.0), "n": torch.tensor(3)}
    aggregate = {"w": t(3.0, 0.0), "n": torch.tensor(9)}
    # Δ = [2, -2]; lr 0.5: [1, 2] + [1, -1] = [2, 1]; the counter is the aggregate's.
    out = FedAvg(lr=0.5).toward(current, aggregate)
    assert out["w"].tolist() == [2.0, 1.0]
    assert out["n"].item() == 9
    assert list(out) == ["w", "n"]


def test_fedavgm_two_steps_by_hand() -> None:
    # momentum 0.5, lr 2, Δ1 = [1, -2], Δ2 = [3, 1]:
    # m1 = Δ1 = [1, -2], w1 = 2 m1 = [2, -4];
    # m2 = 0.5 [1, -2] + [3, 1] = [3.5, 0], w2 = [2, -4] + 2 [3.5, 0] = [9, -4].
    w1, w2 = two_steps(FedAvgM(lr=2.0, momentum=0.5), t(1.0, -2.0), t(3.0, 1.0))
    assert w1 == [2.0, -4.0]
    assert w2 == [9.0, -4.0]


def test_fedadam_two_steps_by_hand() -> None:
    # beta1 = beta2 = 0.5, tau = 1 (v0 = tau^2 = 1), lr 1; Δ1 = [1, 7], Δ2 = [7, -5].
    # Step 1: m1 = 0.5 Δ1 = [0.5, 3.5]; v1 = 0.5*1 + 0.5 [1, 49] = [1, 25];
    #   w1 = m1 / (sqrt(v1) + 1) = [0.5/2, 3.5/6] = [0.25, 7/12].
    # Step 2: m2 = 0.5 [0.5, 3.5] + 0.5 [7, -5] = [3.75, -0.75];
    #   v2 = 0.5 [1, 25] + 0.5 [49, 25] = [25, 25];
    #   w2 = w1 + [3.75/6, -0.75/6] = [0.25 + 0.625, 7/12 - 0.125] = [0.875, 11/24].
    # (Adam's bias correction, which the paper leaves out, would give other numbers.)
    opt = FedAdam(lr=1.0, beta1=0.5, beta2=0.5, tau=1.0)
    w1, w2 = two_steps(opt, t(1.0, 7.0), t(7.0, -5.0))
    assert close(w1, [0.25, 7 / 12])
    assert close(w2, [0.875, 11 / 24])
    assert opt.v["w"].tolist() == [25.0, 25.0]


def test_fedyogi_two_steps_by_hand() -> None:
    # beta1 = beta2 = 0.5, tau = 1 (v0 = 1), lr 1; Δ1 = [1, 4], Δ2 = [4, 2].
    # v <- v - 0.5 Δ² sign(v - Δ²).
    # Step 1: Δ1² = [1, 16]; sign(1 - 1) = 0, sign(1 - 16) = -1: v1 = [1, 1 + 8] = [1, 9];
    #   m1 = [0.5, 2]; w1 = [0.5/2, 2/4] = [0.25, 0.5].
    # Step 2: Δ2² = [16, 4]; sign(1 - 16) = -1: v = 1 + 8 = 9; sign(9 - 4) = +1: v = 9 - 2 = 7
    #   (Adam would give 6.5): v2 = [9, 7]; m2 = 0.5 m1 + 0.5 Δ2 = [2.25, 2];
    #   w2 = [0.25 + 2.25/4, 0.5 + 2/(sqrt(7) + 1)] = [0.8125, 0.5 + 2/(sqrt(7) + 1)].
    opt = FedYogi(lr=1.0, beta1=0.5, beta2=0.5, tau=1.0)
    w1, w2 = two_steps(opt, t(1.0, 4.0), t(4.0, 2.0))
    assert close(w1, [0.25, 0.5])
    assert close(w2, [0.8125, 0.5 + 2 / (math.sqrt(7) + 1)])
    assert opt.v["w"].tolist() == [9.0, 7.0]


def test_fedadagrad_two_steps_by_hand() -> None:
    # beta1 = 0.5, tau = 1 (v0 = 1), lr 1; Δ1 = [0.75, 0], Δ2 = [3, 0]; v <- v + Δ².
    # Step 1: v1 = [1 + 9/16, 1] = [25/16, 1]; m1 = [0.375, 0];
    #   w1 = [0.375 / (5/4 + 1), 0] = [1/6, 0].
    # Step 2: v2 = [25/16 + 9, 1] = [169/16, 1]; m2 = [0.1875 + 1.5, 0] = [1.6875, 0];
    #   w2 = [1/6 + 1.6875 / (13/4 + 1), 0] = [1/6 + 27/68, 0]. A tensor whose Δ stays 0 stays.
    opt = FedAdagrad(lr=1.0, beta1=0.5, tau=1.0)
    w1, w2 = two_steps(opt, t(0.75, 0.0), t(3.0, 0.0))
    assert close(w1, [1 / 6, 0.0])
    assert close(w2, [1 / 6 + 27 / 68, 0.0])
    assert opt.v["w"].tolist() == [169 / 16, 1.0]


def test_lr_scales_the_adaptive_step() -> None:
    # FedAdam as above, step 1 only, lr 0.1: 0.1 [0.25, 7/12].
    w1, _ = two_steps(FedAdam(lr=0.1, beta1=0.5, beta2=0.5, tau=1.0), t(1.0, 7.0), t(0.0, 0.0))
    assert close(w1, [0.025, 0.7 / 12])


# -- registry ----------------------------------------------------------------------------------


def test_registry_builds_fresh_optimizers_and_refuses_unknown_names_and_parameters() -> None:
    adam = server_optimizers.by_name("fedadam", lr=0.1, beta1=0.5, beta2=0.6, tau=0.01)
    assert adam == FedAdam(lr=0.1, beta1=0.5, beta2=0.6, tau=0.01)
    assert server_optimizers.parameters("fedavgm") == ("lr", "momentum")
    assert "beta2" not in server_optimizers.parameters("fedadagrad")
    with pytest.raises(ValueError, match="unknown server optimizer 'sgd'"):
        server_optimizers.by_name("sgd")
    with pytest.raises(ValueError, match=r"bad parameters .*'fedavg'.*momentum"):
        server_optimizers.by_name("fedavg", momentum=0.9)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        FedAvg(lr=-1.0)
    with pytest.raises(ValueError, match=r"beta2 must be in \[0, 1\)"):
        FedYogi(beta2=1.0)
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        FedAdam(tau=0.0)


def test_config_names_the_registrys_optimizers() -> None:
    literal = ServerOptimizerConfig.model_fields["name"].annotation
    assert set(typing.get_args(literal)) == set(server_optimizers.NAMES)


# -- rules with an optimizer -------------------------------------------------------------------


def adam_half() -> FedAdam:
    """A fresh FedAdam with beta1 = beta2 = 0.5, tau = 1 (v0 = 1), lr 1."""
    return FedAdam(lr=1.0, beta1=0.5, beta2=0.5, tau=1.0)


def upd(value: float, samples: int) -> Update:
    return Update({"w": t(value), "n": torch.tensor(5)}, samples, 0.0)


def test_weighted_mean_with_the_default_optimizer_is_weighted_average_exactly() -> None:
    start = {"w": torch.tensor([0.1, 0.2]), "n": torch.tensor(1)}
    models = [
        {"w": torch.tensor([0.3, 0.7]), "n": torch.tensor(2)},
        {"w": torch.tensor([1 / 3, -0.9]), "n": torch.tensor(4)},
    ]
    rule = WeightedMean(start)
    for m, n in zip(models, (3, 7), strict=True):
        rule.apply(Update(m, n, 0.0), 0, 0)
    rule.flush()
    expected = weighted_average(models, [3, 7])
    assert torch.equal(rule.weights["w"], expected["w"])
    assert rule.weights["n"].item() == 2
    assert rule.version == 1
    rule.flush()  # nothing pending: no step
    assert rule.version == 1


def test_weighted_mean_steps_fedadam_along_the_mean() -> None:
    # Uploads -2 (1 sample) and 2 (3 samples): mean (-2 + 6) / 4 = 1 = Δ from w = 0.
    # FedAdam beta1 = beta2 = 0.5, tau = 1: m = 0.5, v = 1, w = 0.5 / 2 = 0.25.
    rule = WeightedMean({"w": t(0.0), "n": torch.tensor(5)}, adam_half())
    rule.apply(upd(-2.0, 1), 0, 0)
    rule.apply(upd(2.0, 3), 0, 0)
    rule.flush()
    assert rule.weights["w"].tolist() == [0.25]


def test_mixing_steps_fedavgm_along_the_mixed_model() -> None:
    # mixing 0.5, constant staleness: update 4 on w = 0 proposes 2, Δ = 2; FedAvgM lr 1,
    # momentum 0.5: m = 2, w = 2. Next update 4 (w = 2) proposes 3, Δ = 1: m = 0.5*2 + 1 = 2,
    # w = 2 + 2 = 4.
    rule = Mixing({"w": t(0.0), "n": torch.tensor(5)}, 0.5, None, FedAvgM(lr=1.0, momentum=0.5))
    rule.apply(upd(4.0, 1), 0, 0)
    assert rule.weights["w"].tolist() == [2.0]
    rule.apply(upd(4.0, 1), 1, 0)
    assert rule.weights["w"].tolist() == [4.0]
    assert rule.version == 2


def test_buffered_steps_the_optimizer_once_per_full_buffer() -> None:
    # Buffer 2, deltas against v0 = 0: -2 (1 sample) and 2 (3 samples): Δ = (-2 + 6)/4 = 1.
    # FedAdam beta1 = beta2 = 0.5, tau = 1, lr 1: m = 0.5, v = 1, w = 0.25. Integer buffer: the
    # server's own (7), not the clients' (5).
    rule = Buffered({"w": t(0.0), "n": torch.tensor(7)}, 2, None, adam_half())
    for _ in range(2):
        rule.hold(0)
    rule.apply(upd(-2.0, 1), 0, 0)
    assert rule.version == 0
    rule.apply(upd(2.0, 3), 0, 0)
    assert rule.weights["w"].tolist() == [0.25]
    assert rule.weights["n"].item() == 7
    assert rule.version == 1


# -- config ------------------------------------------------------------------------------------


def _load(tmp_path: Path, federation: str) -> FederationConfig:
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nfederation:\n" + federation)
    return load_scenario(path).federation


def _error(tmp_path: Path, federation: str) -> str:
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, federation)
    return " ".join(str(info.value).split())


def test_server_optimizer_defaults_and_values(tmp_path: Path) -> None:
    default = FederationConfig().server_optimizer
    assert (default.name, default.lr, default.momentum) == ("fedavg", None, 0.9)
    assert (default.beta1, default.beta2, default.tau) == (0.9, 0.99, 1e-3)
    fed = _load(tmp_path, "  mode: fedbuff\n  server_optimizer: {name: fedyogi, lr: 0.05}\n")
    assert (fed.server_optimizer.name, fed.server_optimizer.lr) == ("fedyogi", 0.05)


def test_server_optimizer_config_is_validated(tmp_path: Path) -> None:
    assert "federation.server_optimizer.name" in _error(
        tmp_path, "  server_optimizer: {name: adam}\n"
    )
    bad_lr = _error(tmp_path, "  server_optimizer: {lr: -0.1}\n")
    assert "federation.server_optimizer.lr: Input should be greater than or equal to" in bad_lr
    assert "federation.server_optimizer.beta2" in _error(
        tmp_path, "  server_optimizer: {beta2: 1.0}\n"
    )
    assert "federation.server_optimizer.tau" in _error(tmp_path, "  server_optimizer: {tau: 0}\n")
    assert "unknown key" in _error(tmp_path, "  server_optimizer: {eps: 0.1}\n")


def test_server_lr_points_to_its_replacement(tmp_path: Path) -> None:
    message = _error(tmp_path, "  mode: fedbuff\n  server_lr: 0.5\n")
    assert "federation.server_lr: replaced by federation.server_optimizer.lr" in message
    assert "federation.server_optimizer.lr=0.5" in message


@pytest.mark.parametrize(
    ("mode", "rule_type"), [("sync", WeightedMean), ("fedasync", Mixing), ("fedbuff", Buffered)]
)
def test_every_mode_gets_its_rule_with_the_configured_optimizer(mode: str, rule_type: type) -> None:
    fed = FederationConfig.model_validate(
        {"mode": mode, "server_optimizer": {"name": "fedadam", "lr": 0.1, "momentum": 0.3}}
    )
    initial: Weights = {"w": t(0.0)}
    rule = server_rule(fed, initial)
    assert isinstance(rule, rule_type)
    # momentum does not apply to fedadam and is ignored, as mode-specific keys are.
    optimizer = typing.cast(typing.Any, rule).optimizer
    assert optimizer == FedAdam(lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    again = typing.cast(typing.Any, server_rule(fed, initial)).optimizer
    assert again is not optimizer  # fresh state for every federated stage run


@pytest.mark.parametrize(("name", "lr"), [("fedavg", 1.0), ("fedavgm", 1.0), ("fedadam", 0.01)])
def test_an_unset_lr_is_the_optimizers_own_default(name: str, lr: float) -> None:
    # Adaptive steps are about lr per coordinate whatever Δ's scale, so they default to 0.01;
    # FedAvg(M) at 1.0 is plain FedAvg.
    fed = FederationConfig.model_validate({"server_optimizer": {"name": name}})
    optimizer = typing.cast(typing.Any, server_rule(fed, {"w": t(0.0)})).optimizer
    assert optimizer.lr == lr
