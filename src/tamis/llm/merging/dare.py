"""DARE: drop and rescale task-vector entries, then combine linearly or by TIES.

Reference: Yu et al., *Language Models are Super Mario: Absorbing Abilities from
Homologous Models as a Free Lunch* (DARE), ICML 2024, arXiv:2311.03099.

Drop masks come from counter-based random numbers keyed by (seed, tensor name,
expert), so a tensor streamed in blocks gets exactly the mask it would get whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tamis.llm.merging.base import (
    MERGE_METHODS,
    MergeMethod,
    MergeParams,
    counter_uniform,
    tensor_key,
)
from tamis.llm.merging.task_arithmetic import task_arithmetic
from tamis.llm.merging.ties import ties_merge

__all__ = ["dare_drop", "dare_mask"]


def dare_mask(
    key: int, offset: int, shape: torch.Size, drop_rate: float
) -> torch.Tensor:
    """Boolean keep-mask: each entry kept with probability ``1 - drop_rate``.

    Args:
        key: Stream key (:func:`~tamis.llm.merging.base.tensor_key`).
        offset: Flat index of the block's first element in the whole tensor.
        shape: Shape of the block.
        drop_rate: Probability p of dropping an entry.
    """
    n = int(torch.Size(shape).numel())
    return (counter_uniform(key, offset, n) >= drop_rate).reshape(shape)


def dare_drop(
    task_vector: torch.Tensor, keep: torch.Tensor, drop_rate: float
) -> torch.Tensor:
    """Zero the dropped entries and rescale the kept ones by ``1 / (1 - p)``."""
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate: got {drop_rate}, expected a value in [0, 1)")
    kept = torch.where(keep, task_vector, torch.zeros_like(task_vector))
    return kept / (1.0 - drop_rate)


def _dropped(
    deltas: Sequence[torch.Tensor], params: MergeParams, name: str, offset: int
) -> list[torch.Tensor]:
    out = []
    for i, (d, p) in enumerate(zip(deltas, params.drop_rates, strict=True)):
        keep = dare_mask(tensor_key(params.seed, name, i), offset, d.shape, p)
        out.append(dare_drop(d, keep, p))
    return out


def _combine_linear(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    params: MergeParams,
    stats: dict[str, Any],
    name: str,
    offset: int,
) -> torch.Tensor:
    dropped = _dropped(deltas, params, name, offset)
    return base + params.scaling * task_arithmetic(dropped, params.weights)


def _combine_ties(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    params: MergeParams,
    stats: dict[str, Any],
    name: str,
    offset: int,
) -> torch.Tensor:
    # DARE replaces TIES's magnitude trim; sign election and disjoint mean stay.
    dropped = _dropped(deltas, params, name, offset)
    no_trim = [0.0] * len(dropped)
    return base + params.scaling * ties_merge(dropped, params.weights, no_trim)


MERGE_METHODS.add(
    "dare_linear",
    MergeMethod(combine=_combine_linear),
    "DARE + task arithmetic",
    paper="arXiv:2311.03099",
)
MERGE_METHODS.add(
    "dare_ties",
    MergeMethod(combine=_combine_ties),
    "DARE + TIES sign election",
    paper="arXiv:2311.03099",
)
