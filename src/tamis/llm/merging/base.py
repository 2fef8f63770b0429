"""Shared pieces of task-vector merging: the method registry and its contract.

A merge method is a :class:`MergeMethod`: a pure ``combine`` function from the
base tensor and the experts' task vectors (``delta_i = theta_i - theta_base``) to
the merged task vector, plus an optional per-tensor statistic (the TIES
magnitude thresholds) that the streaming engine computes over the whole tensor
before it combines row blocks. Every combine function is elementwise given its
statistics, so a tensor merged in blocks equals the tensor merged whole.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tamis.core.registry import Registry

__all__ = [
    "MERGE_METHODS",
    "MergeMethod",
    "MergeParams",
    "Workspace",
    "counter_uniform",
    "tensor_key",
]


@dataclass(frozen=True)
class MergeParams:
    """Hyper-parameters shared by the merge methods.

    Attributes:
        scaling: lambda, the global scale of the merged task vector.
        weights: Per-expert weights w_i (after any Sens-Merging factor K sigma).
        densities: Per-expert fraction of task-vector entries kept by TIES.
        drop_rates: Per-expert DARE drop rate p.
        normalize: Linear merge divides by the sum of weights.
        seed: Seed of DARE's drop masks.
    """

    scaling: float = 1.0
    weights: Sequence[float] = ()
    densities: Sequence[float] = ()
    drop_rates: Sequence[float] = ()
    normalize: bool = True
    seed: int = 0


#: ``statistic(name, task_vectors_whole, params) -> dict`` or None.
Statistic = Callable[[str, Sequence[torch.Tensor], MergeParams], dict[str, Any]]


class Workspace:
    """Reusable float32 scratch buffers of one worker thread.

    The engine's block kernels run many element-wise passes over blocks small
    enough to stay in the CPU cache; taking their buffers from here avoids an
    allocation (and its page faults) per pass.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, n: int) -> torch.Tensor:
        """A (n,) float32 buffer named ``name`` (contents undefined)."""
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < n:
            buf = torch.empty(n, dtype=torch.float32)
            self._buffers[name] = buf
        return buf[:n]


#: ``kernel(base, models, params, stats, ws) -> merged`` over 1-D blocks in the
#: stored dtype (base None for linear); returns float32 (may be a ws buffer).
Kernel = Callable[
    [torch.Tensor | None, Sequence[torch.Tensor], MergeParams, dict, Workspace],
    torch.Tensor,
]


@dataclass(frozen=True)
class MergeMethod:
    """A registered merge method.

    Attributes:
        combine: ``combine(base, task_vectors, params, stats, name, offset)`` ->
            merged parameters, all tensors fp32 of one shape; ``offset`` is the
            flat index of the block's first element inside the whole tensor.
            This is the reference maths (the in-memory merge uses it).
        uses_base: False for the plain linear merge of full weights.
        statistic: Optional whole-tensor statistic needed before combining.
        chunked_statistic: Same statistic from a re-iterable block source, for
            tensors too large to hold whole.
        kernel: Optional fused block kernel for the streaming engine, bit for
            bit equal to ``combine`` (see :data:`Kernel`).
        magnitude_thresholds: The statistic is TIES's per-expert magnitude
            threshold (``stats["thresholds"]``), which the engine then finds
            with its own fast exact selection.
    """

    combine: Callable[..., torch.Tensor]
    uses_base: bool = True
    statistic: Statistic | None = None
    chunked_statistic: Callable[..., dict[str, Any]] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    kernel: Kernel | None = None
    magnitude_thresholds: bool = False


MERGE_METHODS: Registry[MergeMethod] = Registry("merge method")


# Counter-based random numbers: the same element gets the same draw whether the
# tensor is processed whole or in blocks (a stateful generator would not).

_MASK64 = (1 << 64) - 1


def _signed(x: int) -> int:
    x &= _MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


_C1 = _signed(0xBF58476D1CE4E5B9)
_C2 = _signed(0x94D049BB133111EB)
_GOLDEN = _signed(0x9E3779B97F4A7C15)


def _lsr(x: torch.Tensor, s: int) -> torch.Tensor:
    # Logical right shift of int64 (torch's >> is arithmetic).
    return (x >> s) & ((1 << (64 - s)) - 1)


def _splitmix(x: torch.Tensor) -> torch.Tensor:
    # SplitMix64 finaliser (Steele, Lea and Flood 2014) in wrapping int64.
    x = x ^ _lsr(x, 30)
    x = x * _C1
    x = x ^ _lsr(x, 27)
    x = x * _C2
    return x ^ _lsr(x, 31)


def tensor_key(seed: int, name: str, index: int) -> int:
    """A 64-bit stream key for (seed, tensor name, expert index)."""
    raw = (seed * 1_000_003 + zlib.crc32(name.encode()) * 131 + index) & _MASK64
    key = _splitmix(torch.tensor([_signed(raw)], dtype=torch.int64))
    return int(key.item())


def counter_uniform(key: int, offset: int, n: int) -> torch.Tensor:
    """Uniform [0, 1) draws for flat element indices ``offset .. offset + n - 1``.

    Args:
        key: Stream key from :func:`tensor_key`.
        offset: Flat index of the first element.
        n: Number of draws.

    Returns:
        (n,) float32 tensor; element ``j`` depends only on ``key`` and
        ``offset + j``.
    """
    idx = torch.arange(offset, offset + n, dtype=torch.int64)
    bits = _splitmix(idx * _GOLDEN + key)
    # Top 24 bits -> exactly representable float32 in [0, 1).
    return _lsr(bits, 40).to(torch.float32) * (1.0 / (1 << 24))
