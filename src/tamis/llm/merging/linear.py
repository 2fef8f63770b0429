"""Linear merge (weighted average of full weights; "model soups").

Reference: Wortsman et al., *Model soups*, ICML 2022, arXiv:2203.05482.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tamis.llm.merging.base import MERGE_METHODS, MergeMethod, MergeParams

__all__ = ["linear_merge"]


def linear_merge(
    tensors: Sequence[torch.Tensor], weights: Sequence[float], normalize: bool = True
) -> torch.Tensor:
    """Weighted sum of the models' tensors, divided by the weight sum if asked.

    Args:
        tensors: K tensors of one shape (fp32).
        weights: K weights.
        normalize: Divide by ``sum(weights)``.

    Returns:
        The merged tensor, same shape.
    """
    if len(tensors) != len(weights) or not tensors:
        raise ValueError(f"got {len(tensors)} tensors and {len(weights)} weights")
    out = tensors[0] * weights[0]
    for t, w in zip(tensors[1:], weights[1:], strict=True):
        out = out + t * w
    if normalize:
        total = float(sum(weights))
        if total == 0.0:
            raise ValueError("linear merge: the weights sum to 0, cannot normalize")
        out = out / total
    return out


def _combine(
    base: torch.Tensor | None,
    models: Sequence[torch.Tensor],
    params: MergeParams,
    stats: dict[str, Any],
    name: str,
    offset: int,
) -> torch.Tensor:
    # The linear merge sees full weights, not task vectors.
    return linear_merge(models, params.weights, params.normalize)


MERGE_METHODS.add(
    "linear",
    MergeMethod(combine=_combine, uses_base=False),
    "Linear (model soup)",
    paper="arXiv:2203.05482",
)
