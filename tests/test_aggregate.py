"""FedAvg's weighted average against means computed by hand."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nmoe_sim.federation.aggregate import weighted_average


def test_weights_1_and_3_give_quarter_and_three_quarters() -> None:
    a = {"w": torch.tensor([[0.0, 4.0], [8.0, -4.0]]), "b": torch.tensor([1.0])}
    b = {"w": torch.tensor([[4.0, 0.0], [0.0, 4.0]]), "b": torch.tensor([5.0])}
    out = weighted_average([a, b], [1.0, 3.0])
    # 0.25 * a + 0.75 * b, element by element.
    assert torch.equal(out["w"], torch.tensor([[3.0, 1.0], [2.0, 2.0]]))
    assert torch.equal(out["b"], torch.tensor([4.0]))
    assert set(out) == {"w", "b"}


def test_weighted_mean_is_exact_in_float64() -> None:
    # 0.1 is not representable; the float64 mean of three models with weights 2, 3, 5.
    models = [
        {"x": torch.tensor([0.1, 1.0], dtype=torch.float64)},
        {"x": torch.tensor([0.2, 2.0], dtype=torch.float64)},
        {"x": torch.tensor([0.3, 3.0], dtype=torch.float64)},
    ]
    out = weighted_average(models, [2, 3, 5])
    expected = [(2 * 0.1 + 3 * 0.2 + 5 * 0.3) / 10, (2 * 1.0 + 3 * 2.0 + 5 * 3.0) / 10]
    assert out["x"].tolist() == pytest.approx(expected, abs=1e-15)


def test_equal_weights_give_arithmetic_mean() -> None:
    models = [
        {"p": torch.tensor([1.0, 10.0])},
        {"p": torch.tensor([2.0, 20.0])},
        {"p": torch.tensor([6.0, 0.0])},
    ]
    out = weighted_average(models, [7.0, 7.0, 7.0])
    assert torch.equal(out["p"], torch.tensor([3.0, 10.0]))


def test_single_model_returns_itself() -> None:
    m = {"a": torch.tensor([0.1, -2.5, 3.0e-8]), "n": torch.tensor(5, dtype=torch.int64)}
    out = weighted_average([m], [0.37])
    assert torch.equal(out["a"], m["a"])
    assert torch.equal(out["n"], m["n"])


def test_integer_buffers_keep_first_models_value() -> None:
    a = {"w": torch.tensor([1.0]), "num_batches_tracked": torch.tensor(10, dtype=torch.int64)}
    b = {"w": torch.tensor([3.0]), "num_batches_tracked": torch.tensor(30, dtype=torch.int64)}
    out = weighted_average([a, b], [1.0, 1.0])
    assert out["num_batches_tracked"].item() == 10
    assert out["num_batches_tracked"].dtype == torch.int64
    assert torch.equal(out["w"], torch.tensor([2.0]))
    # A copy, not an alias of the first model's tensor.
    out["num_batches_tracked"] += 1
    assert a["num_batches_tracked"].item() == 10


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_is_preserved(dtype: torch.dtype) -> None:
    a = {"w": torch.tensor([1.0, 2.0], dtype=dtype)}
    b = {"w": torch.tensor([3.0, 6.0], dtype=dtype)}
    out = weighted_average([a, b], [1.0, 1.0])
    assert out["w"].dtype == dtype
    assert out["w"].tolist() == [2.0, 4.0]


def test_real_state_dicts_average_with_batchnorm_counter() -> None:
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)) for _ in range(2)]
    sds = [n.state_dict() for n in nets]
    out = weighted_average(sds, [1.0, 3.0])
    assert set(out) == set(sds[0])
    for key, first in sds[0].items():
        assert out[key].dtype == first.dtype
        if torch.is_floating_point(first):
            expected = 0.25 * first.double() + 0.75 * sds[1][key].double()
            torch.testing.assert_close(out[key], expected.to(first.dtype))
        else:
            assert torch.equal(out[key], first)


@pytest.mark.parametrize(
    ("n_models", "weights"),
    [(2, [1.0]), (1, [1.0, 2.0]), (0, [])],
    ids=["fewer-weights", "more-weights", "no-models"],
)
def test_mismatched_lengths_or_no_models_raise(n_models: int, weights: list[float]) -> None:
    models = [{"w": torch.ones(2)} for _ in range(n_models)]
    with pytest.raises(ValueError):
        weighted_average(models, weights)


@pytest.mark.parametrize("weights", [[0.0, 0.0], [1.0, -1.0], [-1.0, -2.0]])
def test_non_positive_total_weight_raises(weights: list[float]) -> None:
    models = [{"w": torch.ones(2)}, {"w": torch.zeros(2)}]
    with pytest.raises(ValueError, match="positive total"):
        weighted_average(models, weights)


# --- properties -------------------------------------------------------------------------------

_f32 = st.floats(-1e6, 1e6, allow_nan=False, width=32)
_weight = st.floats(1e-3, 1e3, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(_f32, min_size=1, max_size=12),
    weights=st.lists(_weight, min_size=1, max_size=6),
)
def test_average_of_identical_models_is_that_model(
    values: list[float], weights: list[float]
) -> None:
    model = {"p": torch.tensor(values, dtype=torch.float32)}
    out = weighted_average([model] * len(weights), weights)
    # The float64 weighted mean of equal values is within ~1e-15 relative of x, far below half a
    # float32 ulp, so rounding back to float32 recovers x exactly.
    assert torch.equal(out["p"], model["p"])


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 5),
    scale=st.floats(1e-3, 1e3, allow_nan=False),
)
def test_average_is_invariant_to_scaling_all_weights(
    data: st.DataObject, n: int, scale: float
) -> None:
    weights = data.draw(st.lists(_weight, min_size=n, max_size=n), label="weights")
    models = [
        {"p": torch.tensor(data.draw(st.lists(_f32, min_size=3, max_size=3)), dtype=torch.float64)}
        for _ in range(n)
    ]
    base = weighted_average(models, weights)
    scaled = weighted_average(models, [w * scale for w in weights])
    torch.testing.assert_close(scaled["p"], base["p"], rtol=1e-12, atol=1e-9)
