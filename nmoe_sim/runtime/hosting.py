"""What a backend needs to host clients: a picklable recipe for each client's state.

The recipe carries every client's train data once (in client order, as numpy arrays so a Ray
object store shares them zero-copy between actors) and cuts client `cid`'s slice on demand.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from nmoe_sim.config import ScenarioError
from nmoe_sim.learning.client import ClientState
from nmoe_sim.models.spec import ModelSpec


def resolve_device(choice: str) -> str:
    """`auto` means CUDA where this process sees a GPU (a Ray actor sees only the GPUs it holds).

    Where it is CUDA, cuDNN is made deterministic in this process: by default it may pick a
    convolution algorithm that sums in another order each time, and the same task run twice on
    one GPU gave different weights (seen on an H100). Same seed, same numbers, on a GPU too.
    """
    if choice == "cuda" and not torch.cuda.is_available():
        raise ScenarioError("runtime.device: cuda, but no CUDA device is visible; use cpu or auto")
    return device_in_use(choice)


def device_in_use(choice: str) -> str:
    """resolve_device without its check, for the clients a host makes once the run has passed
    it: nothing is refused after the work has begun."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return choice


@dataclass(frozen=True)
class ClientFactory:
    spec: ModelSpec
    train_x: np.ndarray  # every client's train images, client after client
    train_y: np.ndarray
    bounds: np.ndarray  # client cid owns rows bounds[cid]:bounds[cid + 1]
    device: str  # "cpu", "cuda" or "auto" (resolved where the state is built)

    @classmethod
    def from_tensors(
        cls,
        spec: ModelSpec,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        sizes: list[int],
        device: str,
    ) -> ClientFactory:
        return cls(spec, train_x.numpy(), train_y.numpy(), np.cumsum([0, *sizes]), device)

    def __call__(self, cid: int) -> ClientState:
        lo, hi = int(self.bounds[cid]), int(self.bounds[cid + 1])
        with warnings.catch_warnings():
            # Arrays from Ray's object store are read-only; tasks never write their data.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = torch.from_numpy(self.train_x[lo:hi])
            y = torch.from_numpy(self.train_y[lo:hi])
        return ClientState(cid, self.spec, x, y, device_in_use(self.device))
