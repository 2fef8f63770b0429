"""Task arithmetic: theta = theta_base + lambda * sum_i w_i * delta_i.

Reference: Ilharco et al., *Editing models with task arithmetic*, ICLR 2023,
arXiv:2212.04089.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tamis.llm.merging.base import MERGE_METHODS, MergeMethod, MergeParams

__all__ = ["task_arithmetic"]


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


MERGE_METHODS.add(
    "task_arithmetic",
    MergeMethod(combine=_combine),
    "Task arithmetic",
    paper="arXiv:2212.04089",
)
