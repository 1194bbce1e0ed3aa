"""Evaluation: the paper's metric (each client's model on the global balanced test set) and
each client's accuracy on its own test split. Evaluation is measurement, not protocol: it moves
no simulated bytes and takes no simulated time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nmoe_sim.learning.client import Weights
from nmoe_sim.learning.loops import predict
from nmoe_sim.models.gate import mask_scores, mix, top_k_weights
from nmoe_sim.models.spec import ModelSpec


@dataclass(frozen=True)
class Scores:
    """Accuracies of one model per client (a shared model appears once per client)."""

    global_per_client: list[float]
    local_per_client: list[float]

    @property
    def accuracy_global(self) -> float:
        return float(np.mean(self.global_per_client))

    @property
    def accuracy_local(self) -> float:
        return float(np.mean(self.local_per_client))


class Evaluator:
    def __init__(
        self,
        test_x: torch.Tensor,
        test_y: torch.Tensor,
        client_test: Sequence[np.ndarray],
        device: torch.device,
    ) -> None:
        self.test_x = test_x
        self.test_y = test_y
        # Client test splits are drawn from the global test set, so one prediction over the global
        # set scores both metrics.
        self.client_test = [torch.as_tensor(idx, dtype=torch.long) for idx in client_test]
        self.device = device
        # The last model classified, by identity: a method scores its final model right after
        # scoring its last round's, the same weights object (weights are replaced, never changed
        # in place), and a pass over the test set is a second or more.
        self._last: tuple[Weights, ModelSpec, torch.Tensor] | None = None

    def _correct(self, predicted: torch.Tensor) -> torch.Tensor:
        return (predicted == self.test_y).float()

    def score_each(self, predictions: Sequence[torch.Tensor]) -> Scores:
        """`predictions[i]`: client i's predicted classes on the global test set."""
        glob, local = [], []
        for idx, pred in zip(self.client_test, predictions, strict=True):
            correct = self._correct(pred)
            glob.append(float(correct.mean()))
            local.append(float(correct[idx].mean()))
        return Scores(glob, local)

    def score_shared(self, prediction: torch.Tensor) -> Scores:
        """One model every client holds: its global accuracy is computed once, not per client."""
        correct = self._correct(prediction)
        glob = float(correct.mean())
        local = [float(correct[idx].mean()) for idx in self.client_test]
        return Scores([glob] * len(self.client_test), local)

    def shared_accuracy(self, prediction: torch.Tensor) -> float:
        """`score_shared(prediction).accuracy_global` without the per-client local scores (the
        mean over clients is taken as there, so the value is the same to the last bit)."""
        glob = float(self._correct(prediction).mean())
        return float(np.mean(np.full(len(self.client_test), glob)))

    def classify(self, spec: ModelSpec, weights: Weights) -> torch.Tensor:
        if self._last is not None and self._last[0] is weights and self._last[1] == spec:
            return self._last[2]
        model = spec.build_classifier()
        model.load_state_dict(weights)
        predicted = predict(model, self.test_x, self.device).argmax(1)
        self._last = (weights, spec, predicted)
        return predicted

    def features(self, spec: ModelSpec, extractor_weights: Weights) -> torch.Tensor:
        extractor = spec.build_extractor()
        extractor.load_state_dict(extractor_weights)
        return predict(extractor, self.test_x, self.device)

    def expert_probs(
        self, spec: ModelSpec, experts: Sequence[Weights], features: torch.Tensor
    ) -> torch.Tensor:
        """[test, experts, classes] class probabilities of every expert."""
        out = []
        for weights in experts:
            expert = spec.build_expert()
            expert.load_state_dict(weights)
            out.append(torch.softmax(predict(expert, features, self.device), dim=1))
        return torch.stack(out, dim=1)


def gate_scores(
    spec: ModelSpec, gate: Weights, features: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """[test, experts] raw scores of one client's gate (no noise at test time)."""
    model = spec.build_gate()
    model.load_state_dict(gate)
    return predict(model, features, device)


def gate_routing(
    spec: ModelSpec,
    gate: Weights,
    features: torch.Tensor,
    top_k: int,
    device: torch.device,
    experts: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """[test, experts] mixture weights of one client's gate (no noise at test time); with
    `experts`, only those can get weight (the others' outputs never reached the client)."""
    scores = gate_scores(spec, gate, features, device)
    if experts is not None:
        scores = mask_scores(scores, torch.tensor(experts))
    return top_k_weights(scores, top_k)


def mixture_predictions(routing: torch.Tensor, expert_probs: torch.Tensor) -> torch.Tensor:
    return mix(routing, expert_probs).argmax(1)


def routing_frequency(routing: torch.Tensor) -> np.ndarray:
    """Share of routing slots each expert receives (the top-k support), rows summing to one."""
    slots = (routing > 0).float()
    return (slots.sum(0) / slots.sum()).numpy()
