"""Message sizes, always measured from the real tensors sent, never typed by hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch


def payload_bytes(obj: object) -> int:
    """Bytes of every tensor in a (nested) message: sum of numel * element_size.

    Containers (mappings, lists, tuples) add their tensors; a bare Python number or string has no
    defined wire size here, so it is refused rather than guessed.
    """
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, Mapping):
        return sum(payload_bytes(v) for v in obj.values())
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        return sum(payload_bytes(v) for v in obj)
    raise TypeError(f"cannot size a message part of type {type(obj).__name__}; send tensors")
