"""Client-side tasks: behaviour checked against outcomes that follow from how the data is built."""

from __future__ import annotations

import pytest
import torch

from nmoe_sim.config import OptimConfig
from nmoe_sim.learning.client import (
    ClientState,
    GateSettings,
    balanced_sample_weights,
    fit_expert,
    fit_gate,
    fresh_weights,
    store_expert_probs,
)
from nmoe_sim.learning.loops import predict
from nmoe_sim.models.gate import top_k_weights
from nmoe_sim.models.spec import ModelSpec

ADAM = OptimConfig(optimizer="adam", lr=1e-2, momentum=0.0, batch_size=64)


def _spec(experts: int, classes: int, dim: int) -> ModelSpec:
    return ModelSpec("small_cnn", (1, 4, 4), classes, experts, dim, 32, 16, 8)


def test_balanced_sample_weights_by_hand() -> None:
    # counts (3, 1, 0), two classes present, n = 4: class 0 -> 4/(2*3), class 1 -> 4/(2*1).
    w = balanced_sample_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert w.tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0])
    assert float(w.mean()) == pytest.approx(1.0)  # each present class weighs n / present in all


def test_gate_learns_to_route_each_class_to_the_expert_that_knows_it() -> None:
    # Expert 0 is right on classes 0-1 and clueless (uniform) on 2-3; expert 1 the reverse.
    # The features reveal the class, so the best top-1 gate routes by class.
    gen = torch.Generator().manual_seed(0)
    n, classes = 800, 4
    y = torch.randint(0, classes, (n,), generator=gen)
    h = torch.nn.functional.one_hot(y, classes).float() + 0.1 * torch.randn(
        n, classes, generator=gen
    )
    knows = [torch.tensor([0, 1]), torch.tensor([2, 3])]
    state = ClientState(0, _spec(2, classes, classes), torch.zeros(n, 1, 4, 4), y)
    state.features["p"] = h
    for e, known in enumerate(knows):
        probs = torch.full((n, classes), 0.25)
        sure = torch.isin(y, known)
        probs[sure] = 0.01
        probs[sure, y[sure]] = 0.97
        store_expert_probs(state, "p", e, probs)
    update = fit_gate(
        state, "p", "g", None, ADAM, 30, GateSettings(1, 0.0, 0.0, dense_loss=1.0), seed=1
    )
    gate = state.spec.build_gate()
    gate.load_state_dict(update.weights)
    chosen = top_k_weights(predict(gate, h, torch.device("cpu")), 1).argmax(1)
    right = torch.where(y < 2, 0, 1)
    assert float((chosen == right).float().mean()) > 0.97


def test_top1_gate_alone_gets_no_gradient() -> None:
    # With k = 1 the kept weight is always 1: the top-k loss cannot move the scores at all, which
    # is why the dense mixture loss exists.
    gen = torch.Generator().manual_seed(0)
    state = ClientState(0, _spec(3, 2, 2), torch.zeros(8, 1, 4, 4), torch.tensor([0, 1] * 4))
    state.features["p"] = torch.randn(8, 2, generator=gen)
    for e in range(3):
        store_expert_probs(state, "p", e, torch.rand(8, 2, generator=gen))
    initial = fresh_weights(state.spec.build_gate(), 5)
    trained = fit_gate(state, "p", "g", None, ADAM, 5, GateSettings(1, 0.0, 0.0), seed=5)
    for key, value in initial.items():
        assert torch.equal(value, trained.weights[key]), key
    state.gates.clear()
    dense = fit_gate(state, "p", "g", None, ADAM, 5, GateSettings(1, 0.0, 0.0, dense_loss=1.0), 5)
    assert not torch.equal(initial["out.weight"], dense.weights["out.weight"])


def test_own_expert_outputs_are_out_of_fold_when_cross_fitting() -> None:
    # Random labels cannot be predicted from independent features: an expert that scores its own
    # training samples memorises them, but out-of-fold scores stay near chance (1/4).
    gen = torch.Generator().manual_seed(0)
    n, classes, dim = 400, 4, 32
    y = torch.randint(0, classes, (n,), generator=gen)
    h = torch.randn(n, dim, generator=gen)

    def own_accuracy(folds: int) -> float:
        state = ClientState(0, _spec(1, classes, dim), torch.zeros(n, 1, 4, 4), y)
        state.features["p"] = h
        fit_expert(state, "p", ADAM, 60, folds, seed=2)
        return float((state.expert_probs["p"][0].argmax(1) == y).float().mean())

    assert own_accuracy(1) > 0.9
    assert own_accuracy(5) < 0.4


def test_in_sample_outputs_are_the_final_experts_softmax() -> None:
    gen = torch.Generator().manual_seed(1)
    n, classes, dim = 100, 3, 5
    y = torch.randint(0, classes, (n,), generator=gen)
    state = ClientState(0, _spec(1, classes, dim), torch.zeros(n, 1, 4, 4), y)
    state.features["p"] = torch.randn(n, dim, generator=gen)
    fit_expert(state, "p", ADAM, 3, 1, seed=0)
    expected = torch.softmax(predict(state.experts["p"], state.features["p"], "cpu"), dim=1)
    assert torch.allclose(state.expert_probs["p"][0], expected)


def test_every_task_declares_what_it_touches() -> None:
    """Backends place and replay tasks by their declared access; a task missing from this list
    would silently be treated as changing the state."""
    from nmoe_sim.learning import client
    from nmoe_sim.learning.access import Access, access_of

    declared = {
        name: access_of(fn)
        for name, fn in vars(client).items()
        if callable(fn) and hasattr(fn, "access")
    }
    assert declared == {
        "fit_classifier": Access.DATA,
        "fit_contrastive": Access.DATA,
        "embed": Access.WRITE,
        "fit_expert": Access.WRITE,
        "expert_weights": Access.READ,
        "shared_stages": Access.READ,
        "restore_shared_stages": Access.WRITE,
        "train_features": Access.READ,
        "serve_expert": Access.READ,
        "store_expert_probs": Access.WRITE,
        "fit_gate": Access.WRITE,
        "gate_weights": Access.READ,
        "adopt_gate": Access.WRITE,
    }
    assert access_of(lambda state: None) is Access.WRITE  # undeclared: the safe assumption
