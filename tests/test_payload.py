"""Message sizes measured from real tensors: numel * element_size, summed over containers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmoe_sim.network.payload import payload_bytes


@pytest.mark.parametrize(
    ("tensor", "expected"),
    [
        (torch.zeros(3, 4, dtype=torch.float32), 3 * 4 * 4),
        (torch.zeros(3, 4, dtype=torch.float16), 3 * 4 * 2),
        (torch.zeros(3, 4, dtype=torch.bfloat16), 3 * 4 * 2),
        (torch.zeros(5, dtype=torch.int64), 5 * 8),
        (torch.zeros(7, dtype=torch.uint8), 7),
        (torch.zeros(2, 3, dtype=torch.bool), 6),
        (torch.zeros(2, 2, dtype=torch.float64), 4 * 8),
        (torch.tensor(1.5), 4),  # a 0-d float32 scalar tensor
        (torch.zeros(0, 4), 0),
    ],
    ids=["f32", "f16", "bf16", "i64", "u8", "bool", "f64", "scalar", "empty"],
)
def test_single_tensor_bytes(tensor: torch.Tensor, expected: int) -> None:
    assert payload_bytes(tensor) == expected


def test_float32_3x4_is_48_bytes() -> None:
    assert payload_bytes(torch.ones(3, 4)) == 48


def test_nested_containers_sum_their_tensors() -> None:
    msg = {
        "a": torch.zeros(3, 4),  # 48
        "b": [torch.zeros(2, dtype=torch.float16), (torch.zeros(3, dtype=torch.int64),)],  # 4 + 24
        "c": {"d": (torch.zeros(1, 1, dtype=torch.float64), [])},  # 8
    }
    assert payload_bytes(msg) == 48 + 4 + 24 + 8


def test_empty_containers_are_zero() -> None:
    assert payload_bytes({}) == 0
    assert payload_bytes([]) == 0
    assert payload_bytes(()) == 0


def test_real_state_dict_matches_numel_times_element_size() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    sd = net.state_dict()
    expected = sum(t.numel() * t.element_size() for t in sd.values())
    # By hand: Linear 4*3 + 3 = 15 floats; BatchNorm weight, bias, running mean, running var:
    # 4 * 3 = 12 floats; num_batches_tracked one int64. (15 + 12) * 4 + 8 = 116 bytes.
    assert expected == 116
    assert payload_bytes(sd) == 116


def test_numpy_arrays_use_nbytes() -> None:
    assert payload_bytes(np.zeros((2, 3), dtype=np.float64)) == 48
    assert payload_bytes(np.zeros(5, dtype=np.int32)) == 20
    assert payload_bytes([np.zeros(2, dtype=np.float32), torch.zeros(2)]) == 16


@pytest.mark.parametrize(
    "part",
    [3, 2.5, "hello", None, b"raw", {"a": torch.zeros(1), "n": 3}, [torch.zeros(1), "x"]],
    ids=["int", "float", "str", "none", "bytes", "dict-with-int", "list-with-str"],
)
def test_refuses_parts_without_a_wire_size(part: object) -> None:
    with pytest.raises(TypeError):
        payload_bytes(part)
