"""Named, seeded random streams: every random choice in a run comes from one of these.

A stream is identified by the scenario seed and a tuple of names (e.g. ("partition",) or
("fedsc", "round", 3, "client", 7)), hashed stably so the same names give the same stream on any
machine, process or backend.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def derive_seed(seed: int, *names: object) -> int:
    text = "/".join([str(seed), *map(str, names)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def numpy_rng(seed: int, *names: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *names))


def torch_generator(seed: int, *names: object) -> torch.Generator:
    import torch  # here, not at the top: `nmoe-sim validate` uses numpy_rng and stays torch-free

    return torch.Generator().manual_seed(derive_seed(seed, *names))
