"""Task arithmetic: theta = theta_base + lambda * sum_i w_i * delta_i.

Reference: Ilharco et al., *Editing models with task arithmetic*, ICLR 2023,
arXiv:2212.04089.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tamis.llm.merging.base import MERGE_METHODS, MergeMethod, MergeParams, Workspace

__all__ = ["task_arithmetic", "task_arithmetic_block"]


def task_arithmetic(
    task_vectors: Sequence[torch.Tensor], weights: Sequence[float]
) -> torch.Tensor:
    """Weighted sum of task vectors, ``sum_i w_i * delta_i``.

    Args:
        task_vectors: K tensors ``delta_i`` of one shape.
        weights: K weights.

    Returns:
        The merged task vector (before the global scaling lambda).
    """
    if len(task_vectors) != len(weights) or not task_vectors:
        raise ValueError(
            f"got {len(task_vectors)} task vectors and {len(weights)} weights"
        )
    out = task_vectors[0] * weights[0]
    for tv, w in zip(task_vectors[1:], weights[1:], strict=True):
        out = out + tv * w
    return out


def _combine(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    params: MergeParams,
    stats: dict[str, Any],
    name: str,
    offset: int,
) -> torch.Tensor:
    return base + params.scaling * task_arithmetic(deltas, params.weights)


def task_arithmetic_block(
    base: torch.Tensor,
    models: Sequence[torch.Tensor],
    params: MergeParams,
    stats: dict[str, Any],
    ws: Workspace,
) -> torch.Tensor:
    """Fused streaming kernel: ``base + lambda * sum_i w_i (theta_i - base)``.

    Same operations, in the same order and rounding, as :func:`_combine` on
    float32 task vectors, but in place on reusable buffers.

    Args:
        base: (L,) base block in its stored dtype.
        models: K (L,) expert blocks.
        params: Hyper-parameters (weights, scaling).
        stats: Unused.
        ws: Scratch buffers.

    Returns:
        (L,) float32 merged block (a workspace buffer).
    """
    n = base.numel()
    b = ws.get("b", n).copy_(base)
    acc = ws.get("acc", n)
    x = ws.get("x", n)
    for i, (m, w) in enumerate(zip(models, params.weights, strict=True)):
        x.copy_(m).sub_(b)  # delta_i
        if i == 0:
            torch.mul(x, w, out=acc)
        else:
            acc.add_(x.mul_(w))
    return acc.mul_(params.scaling).add_(b)


MERGE_METHODS.add(
    "task_arithmetic",
    MergeMethod(combine=_combine, kernel=task_arithmetic_block),
    "Task arithmetic",
    paper="arXiv:2212.04089",
)
