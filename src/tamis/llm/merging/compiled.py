"""Compiled TIES block kernels for the streaming engine (``compile: true``).

The eager kernels of :mod:`tamis.llm.merging.ties` and
:mod:`tamis.llm.merging.selection` make a dozen or more separate passes over
each cache-sized block, one per torch or numpy operation. ``torch.compile``
turns the same operations into one generated C++ loop per kernel, which on a
CPU is several times faster. The kernels are compiled for any block length
(dynamic shapes), and the engine hands them blocks of about a million
elements, so the fixed cost of a call is negligible; one generated loop per
block streams through the inputs without intermediate buffers, so the block
need not fit in a cache. The operations and their order are those of the
eager kernels, so the results are bit for bit the same (tested); the inductor
backend compiles without floating-point contraction, so no multiply-add is
fused into a differently rounded one.

Compilation needs a C++ compiler and costs a few seconds per process (cached
across processes by torch), so it pays off on large merges only; it is off by
default. Only blocks of the compiled dtypes use the compiled code; anything
else runs eagerly. If compiling fails, the engine logs why and uses the eager
kernels.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from tamis.llm.merging.selection import BandCount, Bracket

log = logging.getLogger(__name__)

__all__ = ["CompiledTies"]


def _ties(
    base: torch.Tensor,
    models: list[torch.Tensor],
    weights: torch.Tensor,
    thresholds: torch.Tensor,
    scaling: torch.Tensor,
) -> torch.Tensor:
    # The operations of ties.ties_block, in its order, without scratch buffers.
    b = base.to(torch.float32)
    trimmed = []
    for i, m in enumerate(models):
        x = m.to(torch.float32) - b
        x = torch.where(x.abs() >= thresholds[i], x, torch.zeros_like(x))
        trimmed.append(x * weights[i])
    elected = trimmed[0]
    for x in trimmed[1:]:
        elected = elected + x
    elected = torch.sign(elected)
    total = count = None
    for x in trimmed:
        u = torch.clamp(x * elected, min=0.0)
        agree = (u > 0.0).to(torch.float32)
        total = u if total is None else total + u
        count = agree if count is None else count + agree
    merged = total / torch.clamp(count, min=1.0) * elected + 0.0
    return merged * scaling + b


def _band(
    base: torch.Tensor, model: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # selection.count_band on |model - base|: band values (others -1), counts.
    a = (model.to(torch.float32) - base.to(torch.float32)).abs()
    at_lo = a >= lo
    above = a > hi
    band = torch.where(at_lo & ~above, a, torch.full_like(a, -1.0))
    return band, at_lo.sum(), above.sum()


#: Elements per block handed to the compiled kernels.
COMPILED_BLOCK = 1 << 20


class CompiledTies:
    """TIES kernels compiled for one number of experts and one pair of dtypes.

    Args:
        n_models: Number of experts K.
        base_dtype: Storage dtype of the base model's blocks.
        model_dtype: Storage dtype of the experts' blocks.

    Raises:
        Exception: Whatever ``torch.compile`` raises when it cannot compile
            (no C++ compiler, unsupported platform); the engine catches it.
    """

    def __init__(
        self,
        n_models: int,
        base_dtype: torch.dtype,
        model_dtype: torch.dtype,
        block: int = COMPILED_BLOCK,
    ) -> None:
        self.block = block  # elements per block the engine should use
        self.dtypes = (base_dtype, model_dtype)
        self.seconds = 0.0  # time spent compiling (set by the engine)
        # Compile now, in the calling thread, before any worker uses them
        # (torch's compiler stack emits deprecation warnings of its own). Two
        # small kernels: a pool of compiler processes would cost more to start
        # than it saves.
        from torch._inductor import config as inductor_config

        with warnings.catch_warnings(), inductor_config.patch(compile_threads=1):
            warnings.simplefilter("ignore", DeprecationWarning)
            self._ties: Callable[..., Any] = torch.compile(_ties, dynamic=True)
            self._band: Callable[..., Any] = torch.compile(_band, dynamic=True)
            base = torch.zeros(4096, dtype=base_dtype)
            models = [torch.zeros(4096, dtype=model_dtype) for _ in range(n_models)]
            # Distinct tensors: dynamo specialises on aliasing between inputs.
            weights, thresholds = torch.ones(n_models), torch.ones(n_models)
            self._ties(base, models, weights, thresholds, torch.tensor(1.0))
            self._band(base, models[0], torch.tensor(0.0), torch.tensor(1.0))

    def fits(self, base: torch.Tensor, models: Sequence[torch.Tensor]) -> bool:
        """Whether these blocks have the compiled dtypes."""
        return base.dtype == self.dtypes[0] and all(
            m.dtype == self.dtypes[1] for m in models
        )

    def kernel(
        self,
        base: torch.Tensor,
        models: Sequence[torch.Tensor],
        weights: Sequence[float],
        thresholds: Sequence[float],
        scaling: float,
    ) -> torch.Tensor:
        """``base + lambda * ties_merge(...)`` of one block, as ``ties_block``."""
        return self._ties(
            base,
            list(models),
            torch.tensor(list(weights), dtype=torch.float32),
            torch.tensor(list(thresholds), dtype=torch.float32),
            torch.tensor(scaling, dtype=torch.float32),
        )

    def count_band(
        self, base: torch.Tensor, model: torch.Tensor, bracket: Bracket
    ) -> BandCount:
        """``selection.count_band`` of ``|model - base|`` for one block."""
        lo = torch.tensor(bracket.lo, dtype=torch.float32)
        hi = torch.tensor(bracket.hi, dtype=torch.float32)
        band, at_least_lo, above_hi = self._band(base, model, lo, hi)
        n_lo, n_hi = int(at_least_lo), int(above_hi)
        if bracket.lo == bracket.hi:
            return BandCount(n_lo, n_hi, None)
        if n_lo == n_hi:
            return BandCount(n_lo, n_hi, band.new_empty(0))
        # numpy's compress is several times faster than torch's masked select.
        values = band.numpy()
        return BandCount(n_lo, n_hi, torch.from_numpy(np.compress(values >= 0, values)))
