"""Mathematics of the merge methods on small tensors."""

from __future__ import annotations

import pytest
import torch

from tamis.llm.merging import MERGE_METHODS, LayerCoefficients, MergeParams
from tamis.llm.merging.base import counter_uniform, tensor_key
from tamis.llm.merging.dare import dare_drop, dare_mask
from tamis.llm.merging.engine import merge_tensor
from tamis.llm.merging.linear import linear_merge
from tamis.llm.merging.task_arithmetic import task_arithmetic
from tamis.llm.merging.ties import (
    magnitude_threshold,
    magnitude_threshold_blocks,
    ties_merge,
)


def _params(k: int, **kw: object) -> MergeParams:
    base = {
        "scaling": 0.7,
        "weights": [1.0] * k,
        "densities": [1.0] * k,
        "drop_rates": [0.0] * k,
    }
    base.update(kw)
    return MergeParams(**base)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_linear_one_model_weight_one_returns_it_exactly(dtype: torch.dtype) -> None:
    theta = torch.randn(5, 7).to(dtype)
    merged = merge_tensor(
        MERGE_METHODS.get("linear"), "w", None, [theta], _params(1, weights=[1.0])
    )
    assert merged.dtype == dtype
    assert torch.equal(merged, theta)


def test_linear_is_weighted_average() -> None:
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])
    assert torch.equal(linear_merge([a, b], [1.0, 3.0]), torch.tensor([2.5, 5.0]))
    assert torch.equal(linear_merge([a, b], [1.0, 3.0], normalize=False), a + 3 * b)
    with pytest.raises(ValueError, match="sum to 0"):
        linear_merge([a, b], [1.0, -1.0])


def test_task_arithmetic_closed_form() -> None:
    base = torch.tensor([1.0, 1.0, 1.0])
    experts = [torch.tensor([2.0, 1.0, 0.0]), torch.tensor([1.0, 3.0, 1.0])]
    merged = merge_tensor(
        MERGE_METHODS.get("task_arithmetic"),
        "w",
        base,
        experts,
        _params(2, scaling=0.5, weights=[1.0, 2.0]),
    )
    # deltas (1,0,-1) and (0,2,0); 1 + 0.5 * (1*(1,0,-1) + 2*(0,2,0))
    assert torch.equal(merged, torch.tensor([1.5, 3.0, 0.5]))


def test_ties_density_one_single_expert_equals_task_arithmetic() -> None:
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=gen)
    expert = base + torch.randn(6, 5, generator=gen)
    expert[0, 0] = base[0, 0]  # a zero entry in the task vector
    params = _params(1, scaling=0.8, weights=[1.3])
    ties = merge_tensor(MERGE_METHODS.get("ties"), "w", base, [expert], params)
    ta = merge_tensor(MERGE_METHODS.get("task_arithmetic"), "w", base, [expert], params)
    assert torch.equal(ties, ta)


def test_ties_hand_computed_example() -> None:
    # Three task vectors over 4 entries, density 0.5 (keep the 2 largest each).
    tvs = [
        torch.tensor([0.5, -0.1, 0.3, -2.0]),
        torch.tensor([0.4, 0.2, -0.9, 0.05]),
        torch.tensor([-0.3, 0.6, 0.1, -1.0]),
    ]
    thresholds = [magnitude_threshold(t, 0.5) for t in tvs]
    assert thresholds == pytest.approx([0.5, 0.4, 0.6])
    # trimmed: (0.5,0,0,-2), (0.4,0,-0.9,0), (0,0.6,0,-1)
    # elected signs: +, +, -, -; disjoint means: 0.45, 0.6, -0.9, -1.5
    merged = ties_merge(tvs, [1.0, 1.0, 1.0], thresholds)
    assert torch.allclose(merged, torch.tensor([0.45, 0.6, -0.9, -1.5]))


def test_ties_weights_scale_agreeing_entries() -> None:
    tvs = [torch.tensor([1.0, -1.0]), torch.tensor([1.0, 3.0])]
    merged = ties_merge(tvs, [2.0, 1.0], [0.0, 0.0])
    # entry 0: both agree (+): (2 + 1) / 2; entry 1: sign(-2 + 3) = +, only expert 2
    assert torch.equal(merged, torch.tensor([1.5, 3.0]))


@pytest.mark.parametrize("density", [0.0, 0.01, 0.3, 0.5, 0.77, 1.0])
def test_block_threshold_equals_kthvalue(density: float) -> None:
    gen = torch.Generator().manual_seed(1)
    tv = torch.randn(37, 11, generator=gen)
    tv[3] = tv[4]  # repeated magnitudes
    tv[5, :3] = 0.0

    def blocks() -> list[torch.Tensor]:
        return [tv[i : i + 5] for i in range(0, 37, 5)]

    whole = magnitude_threshold(tv, density)
    streamed = magnitude_threshold_blocks(blocks, tv.numel(), density)
    assert streamed == whole
    if density == 1.0:
        assert whole == float(tv.abs().min())


def test_dare_drop_rate_zero_equals_task_arithmetic() -> None:
    gen = torch.Generator().manual_seed(2)
    base = torch.randn(8, 3, generator=gen)
    experts = [base + torch.randn(8, 3, generator=gen) for _ in range(3)]
    params = _params(3, weights=[0.5, 1.0, 2.0], drop_rates=[0.0] * 3, seed=5)
    dare = merge_tensor(MERGE_METHODS.get("dare_linear"), "w", base, experts, params)
    ta = merge_tensor(MERGE_METHODS.get("task_arithmetic"), "w", base, experts, params)
    assert torch.equal(dare, ta)


def test_dare_drops_and_rescales() -> None:
    tv = torch.ones(10_000)
    keep = dare_mask(tensor_key(0, "w", 0), 0, tv.shape, 0.9)
    out = dare_drop(tv, keep, 0.9)
    assert torch.equal(out[keep], torch.full_like(out[keep], 1.0 / (1.0 - 0.9)))
    assert torch.all(out[~keep] == 0)
    assert torch.equal(out != 0, keep)
    # about 10% kept: a binomial(10000, 0.1) lies within 6 sigma (= 180) of 1000
    assert abs(int(keep.sum()) - 1000) < 180


def test_counter_uniform_is_block_invariant_and_keyed() -> None:
    whole = counter_uniform(123, 0, 1000)
    parts = torch.cat([counter_uniform(123, i, 100) for i in range(0, 1000, 100)])
    assert torch.equal(whole, parts)
    assert not torch.equal(whole, counter_uniform(124, 0, 1000))
    assert float(whole.min()) >= 0.0 and float(whole.max()) < 1.0
    assert tensor_key(0, "a", 0) != tensor_key(0, "a", 1) != tensor_key(1, "a", 1)


@pytest.mark.parametrize(
    "method", ["task_arithmetic", "ties", "dare_linear", "dare_ties"]
)
def test_uniform_sens_coefficients_reduce_to_base_method(method: str) -> None:
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(9, 4, generator=gen)
    experts = [base + torch.randn(9, 4, generator=gen) for _ in range(3)]
    params = _params(3, densities=[0.5] * 3, drop_rates=[0.3] * 3)
    uniform = LayerCoefficients.uniform(["model.layers.0"], ["a", "b", "c"])
    name = "model.layers.0.mlp.up_proj.weight"
    plain = merge_tensor(MERGE_METHODS.get(method), name, base, experts, params)
    sens = merge_tensor(MERGE_METHODS.get(method), name, base, experts, params, uniform)
    assert torch.equal(plain, sens)


def test_task_arithmetic_sum() -> None:
    tvs = [torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 1.0])]
    assert torch.equal(task_arithmetic(tvs, [2.0, 1.0]), torch.tensor([1.0, 5.0]))
