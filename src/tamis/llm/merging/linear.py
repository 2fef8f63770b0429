"""Linear merge (weighted average of full weights; "model soups").

Reference: Wortsman et al., *Model soups*, ICML 2022, arXiv:2203.05482.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tamis.llm.merging.base import MERGE_METHODS, MergeMethod, MergeParams, Workspace

__all__ = ["linear_block", "linear_merge"]


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


def linear_block(
    base: torch.Tensor | None,
    models: Sequence[torch.Tensor],
    params: MergeParams,
    stats: dict[str, Any],
    ws: Workspace,
) -> torch.Tensor:
    """Fused streaming kernel of :func:`linear_merge` (same rounding).

    Args:
        base: Unused (the linear merge sees full weights).
        models: K (L,) blocks in their stored dtype.
        params: Hyper-parameters (weights, normalize).
        stats: Unused.
        ws: Scratch buffers.

    Returns:
        (L,) float32 merged block (a workspace buffer).
    """
    n = models[0].numel()
    acc = ws.get("acc", n)
    x = ws.get("x", n)
    for i, (m, w) in enumerate(zip(models, params.weights, strict=True)):
        x.copy_(m)
        if i == 0:
            torch.mul(x, w, out=acc)
        else:
            acc.add_(x.mul_(w))
    if params.normalize:
        total = float(sum(params.weights))
        if total == 0.0:
            raise ValueError("linear merge: the weights sum to 0, cannot normalize")
        acc.div_(total)
    return acc


MERGE_METHODS.add(
    "linear",
    MergeMethod(combine=_combine, uses_base=False, kernel=linear_block),
    "Linear (model soup)",
    paper="arXiv:2203.05482",
)
