"""TIES-Merging: trim, elect sign, disjoint merge.

Reference: Yadav et al., *TIES-Merging: Resolving Interference When Merging
Models*, NeurIPS 2023, arXiv:2306.01708.

The magnitude threshold of each task vector is its k-th largest absolute value,
found by selection (``torch.kthvalue``, linear time) rather than a full sort; for
tensors streamed in blocks, an exact two-pass radix selection over the float32
bit patterns gives the same value without holding the tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from tamis.llm.merging.base import MERGE_METHODS, MergeMethod, MergeParams, Workspace

__all__ = [
    "keep_count",
    "ties_block",
    "magnitude_threshold",
    "magnitude_threshold_blocks",
    "ties_merge",
    "trim",
]


def keep_count(numel: int, density: float) -> int:
    """Number of entries TIES keeps: ``int(density * numel)``."""
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density: got {density}, expected a value in [0, 1]")
    return int(density * numel)


def magnitude_threshold(task_vector: torch.Tensor, density: float) -> float:
    """The k-th largest ``|delta|`` with ``k = int(density * numel)``.

    Entries with ``|delta| >= threshold`` are kept. Returns ``inf`` when k is 0.
    """
    n = task_vector.numel()
    k = keep_count(n, density)
    if k == 0:
        return float("inf")
    magnitude = task_vector.detach().abs().flatten().to(torch.float32)
    # k-th largest == (n - k + 1)-th smallest; kthvalue is a selection, O(n).
    return float(torch.kthvalue(magnitude, n - k + 1).values)


def _kth_largest_in_bins(hist: torch.Tensor, k: int) -> tuple[int, int]:
    # Bin holding the k-th largest element and the rank inside that bin.
    above = torch.flip(torch.cumsum(torch.flip(hist, [0]), 0), [0])  # count >= bin
    b = int(torch.nonzero(above >= k).max())
    higher = int(above[b + 1]) if b + 1 < hist.numel() else 0
    return b, k - higher


def magnitude_threshold_blocks(
    blocks: Callable[[], Iterable[torch.Tensor]], numel: int, density: float
) -> float:
    """Same value as :func:`magnitude_threshold`, from blocks of the tensor.

    Non-negative float32 values order like their int32 bit patterns, so two
    histogram passes (high 16 bits, then low 16 bits inside the chosen bin)
    find the exact k-th largest with memory independent of the tensor size.

    Args:
        blocks: Callable returning a fresh iterator over fp32 blocks of the task
            vector (any shapes; together exactly its elements).
        numel: Total number of elements.
        density: Fraction kept.
    """
    k = keep_count(numel, density)
    if k == 0:
        return float("inf")

    # Pass 1: histogram of the high 16 bits of |delta| (sign bit is always 0).
    high = torch.zeros(1 << 15, dtype=torch.int64)
    for block in blocks():
        bits = block.abs().flatten().view(torch.int32)
        high += torch.bincount(bits >> 16, minlength=1 << 15)
    hb, rank = _kth_largest_in_bins(high, k)

    # Pass 2: low 16 bits of the entries in that bin.
    low = torch.zeros(1 << 16, dtype=torch.int64)
    for block in blocks():
        bits = block.abs().flatten().view(torch.int32)
        low += torch.bincount(bits[(bits >> 16) == hb] & 0xFFFF, minlength=1 << 16)
    lb, _ = _kth_largest_in_bins(low, rank)
    pattern = torch.tensor([(hb << 16) | lb], dtype=torch.int32)
    return float(pattern.view(torch.float32))


def trim(task_vector: torch.Tensor, threshold: float) -> torch.Tensor:
    """Zero every entry whose magnitude is below ``threshold``."""
    return torch.where(
        task_vector.abs() >= threshold, task_vector, torch.zeros_like(task_vector)
    )


def ties_merge(
    task_vectors: Sequence[torch.Tensor],
    weights: Sequence[float],
    thresholds: Sequence[float],
) -> torch.Tensor:
    """Trim each task vector, elect a sign per entry, average the agreeing ones.

    ``merged = sum_i w_i * t_i * [sign t_i == s] / max(1, #{i: agree})`` with
    ``t_i`` the trimmed task vectors and ``s = sign(sum_i w_i * t_i)``. With unit
    weights this is the paper's disjoint mean; the weights carry per-model
    coefficients such as Sens-Merging's ``K * sigma``.

    Args:
        task_vectors: K tensors of one shape (fp32).
        weights: K weights.
        thresholds: K magnitude thresholds (see :func:`magnitude_threshold`).

    Returns:
        The merged task vector, same shape (before the global scaling lambda).
    """
    if not len(task_vectors) == len(weights) == len(thresholds) or not task_vectors:
        raise ValueError(
            "ties_merge: task_vectors, weights, thresholds differ in length"
        )
    # Trim and weight (fresh tensors, then updated in place to save passes).
    trimmed = []
    for tv, w, t in zip(task_vectors, weights, thresholds, strict=True):
        x = tv.masked_fill(tv.abs() < t, 0.0) if t > 0 else tv.clone()
        if w != 1.0:
            x.mul_(w)
        trimmed.append(x)
    elected = trimmed[0].clone()
    for x in trimmed[1:]:
        elected.add_(x)
    elected.sign_()  # (...,) in {-1, 0, 1}

    # Disjoint mean over the entries whose sign agrees with the elected one
    # (x * s > 0 exactly when sign(x) == s != 0).
    total = torch.zeros_like(elected)
    count = torch.zeros_like(elected)
    for x in trimmed:
        agree = (x * elected) > 0
        total.add_(x.mul_(agree))
        count.add_(agree)
    return total.div_(count.clamp_(min=1.0))


def _statistic(
    name: str, deltas: Sequence[torch.Tensor], params: MergeParams
) -> dict[str, Any]:
    return {
        "thresholds": [
            magnitude_threshold(d, rho)
            for d, rho in zip(deltas, params.densities, strict=True)
        ]
    }


def _chunked_statistic(
    name: str,
    blocks: Callable[[int], Iterable[torch.Tensor]],
    numel: int,
    params: MergeParams,
) -> dict[str, Any]:
    return {
        "thresholds": [
            magnitude_threshold_blocks(lambda i=i: blocks(i), numel, rho)
            for i, rho in enumerate(params.densities)
        ]
    }


def _combine(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    params: MergeParams,
    stats: dict[str, Any],
    name: str,
    offset: int,
) -> torch.Tensor:
    merged = ties_merge(deltas, params.weights, stats["thresholds"])
    return base + params.scaling * merged


def _below(t: float) -> float:
    # The largest float32 below t (t itself a positive float32).
    return float(np.nextafter(np.float32(t), np.float32(0.0)))


def ties_block(
    base: torch.Tensor,
    models: Sequence[torch.Tensor],
    params: MergeParams,
    stats: dict[str, Any],
    ws: Workspace,
) -> torch.Tensor:
    """Fused streaming kernel: ``base + lambda * ties_merge(...)``, bit for bit.

    Works on a block small enough to stay in cache, in place, with float32
    indicators instead of boolean masks (vectorised on CPU), and trims with
    ``hardshrink`` at the float32 just below the threshold (one pass). Rewritten as
    ``u_i = max(s * t_i, 0)`` (``|t_i|`` where ``t_i`` agrees with the elected
    sign ``s``, else 0), the disjoint mean is ``s * sum_i u_i / #{u_i > 0}``;
    negating a sum is exact, so this equals :func:`ties_merge` exactly, and
    zeros are made ``+0`` as there.

    Args:
        base: (L,) base block in its stored dtype.
        models: K (L,) expert blocks.
        params: Hyper-parameters (weights, scaling).
        stats: ``{"thresholds": [...]}``, one magnitude threshold per expert.
        ws: Scratch buffers.

    Returns:
        (L,) float32 merged block (a workspace buffer).
    """
    n = base.numel()
    b = ws.get("b", n).copy_(base)
    elected = ws.get("s", n)
    ind = ws.get("ind", n)
    u = ws.get("u", n)
    trimmed = []
    thresholds = stats["thresholds"]
    for i, (m, w, t) in enumerate(zip(models, params.weights, thresholds, strict=True)):
        x = ws.get(f"x{i}", n).copy_(m).sub_(b)  # delta_i
        if t > 0:
            # Keep |delta| >= t in one pass: hardshrink keeps |x| > lambda, and
            # lambda is the float32 just below t.
            torch.hardshrink(x, _below(t), out=x)
        if w != 1.0:
            x.mul_(w)
        if i == 0:
            elected.copy_(x)
        else:
            elected.add_(x)
        trimmed.append(x)
    elected.sign_()  # (L,) in {-1, 0, 1}

    total = ws.get("total", n)
    count = ws.get("count", n)
    for i, x in enumerate(trimmed):
        torch.mul(x, elected, out=u).clamp_(min=0.0)  # |x| where it agrees
        if i == 0:
            total.copy_(u)
            torch.gt(u, 0.0, out=count)
        else:
            total.add_(u)
            count.add_(torch.gt(u, 0.0, out=ind))
    merged = total.div_(count.clamp_(min=1.0)).mul_(elected).add_(0.0)  # +0 zeros
    return merged.mul_(params.scaling).add_(b)


MERGE_METHODS.add(
    "ties",
    MergeMethod(
        combine=_combine,
        statistic=_statistic,
        chunked_statistic=_chunked_statistic,
        kernel=ties_block,
        magnitude_thresholds=True,
    ),
    "TIES-Merging",
    paper="arXiv:2306.01708",
)
