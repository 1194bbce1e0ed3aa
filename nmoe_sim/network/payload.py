"""Message sizes, always measured from the real tensors sent, never typed by hand."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import numpy as np


def payload_bytes(obj: object) -> int:
    """Bytes of every tensor in a (nested) message: sum of numel * element_size.

    Containers (mappings, lists, tuples) add their tensors; a bare Python number or string has no
    defined wire size here, so it is refused rather than guessed.
    """
    # torch is not imported for this: a torch tensor can only exist once torch is loaded, so
    # the channel (and everything that only validates a scenario) stays torch-free.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, Mapping):
        return sum(payload_bytes(v) for v in obj.values())
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        return sum(payload_bytes(v) for v in obj)
    raise TypeError(f"cannot size a message part of type {type(obj).__name__}; send tensors")
