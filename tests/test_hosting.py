"""Where a client's work runs: the device `runtime.device` resolves to, in each process."""

from __future__ import annotations

import pytest
import torch

from nmoe_sim.runtime.hosting import resolve_device


def test_cuda_makes_cudnn_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where `auto` resolves to CUDA, cuDNN may no longer pick algorithms by timing or sum in a
    varying order (one task on two actors of one H100 gave different weights without this)."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert torch.backends.cudnn.benchmark  # nothing changes for the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.benchmark
