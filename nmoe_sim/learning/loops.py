"""Mini-batch loops shared by every stage: one way to iterate, optimise and predict."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from nmoe_sim.config import OptimConfig


def make_optimizer(params: Iterator[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches covering 0..n-1 once."""
    order = torch.randperm(n, generator=generator)
    yield from order.split(batch_size)


def fit(
    model: nn.Module,
    tensors: tuple[torch.Tensor, ...],
    loss_fn: Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor],
    cfg: OptimConfig,
    epochs: int,
    generator: torch.Generator,
    device: torch.device,
) -> float:
    """Train `model` in place; `loss_fn(model, batch)` gets the batch already on `device`.

    Returns the mean loss of the last epoch.
    """
    _leave_cpu(model, device).train()
    optimizer = make_optimizer(model.parameters(), cfg)
    n = tensors[0].shape[0]
    last = float("nan")
    for _ in range(epochs):
        total, count = 0.0, 0
        for idx in batches(n, cfg.batch_size, generator):
            batch = tuple(t[idx].to(device, non_blocking=True) for t in tensors)
            loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        last = total / max(count, 1)
    _back_to_cpu(model, device)
    return last


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 2048
) -> torch.Tensor:
    """Model outputs for all of `x`, in eval mode, on CPU."""
    _leave_cpu(model, device).eval()
    out = [model(chunk.to(device)).cpu() for chunk in x.split(batch_size)]
    _back_to_cpu(model, device)
    return torch.cat(out) if out else torch.empty(0)


# Models rest on the CPU between tasks. A move to where a model already is still walks every
# submodule and tensor (1.3 s over the 2,000 tasks of a cross-device run, under cProfile), so the
# CPU case skips it.
def _leave_cpu(model: nn.Module, device: torch.device) -> nn.Module:
    return model if torch.device(device).type == "cpu" else model.to(device)


def _back_to_cpu(model: nn.Module, device: torch.device) -> None:
    if torch.device(device).type != "cpu":
        model.cpu()


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the model's weights: what travels over the network."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
