"""Exact k-th largest magnitude by a sampled bracket and one counting pass.

TIES keeps the entries of a task vector whose magnitude is at least the k-th
largest magnitude ``T`` (all entries equal to ``T`` are kept, so ties can keep
more than k). A full sort costs O(n log n) and ``torch.kthvalue`` copies the
tensor and runs single-threaded. Here ``T`` is found exactly in three steps:

1. **Bracket from a sample.** With ``m`` magnitudes drawn at random, the
   number of sample values ``>= T`` is Binomial(m, k/n). Taking sample order
   statistics ``z`` standard deviations on either side of the expected rank
   gives ``lo <= hi`` with ``#{a > hi} < k <= #{a >= lo}`` with very high
   probability (z = 4.5: a miss about once in 300,000 tensors per side).
2. **One counting pass** over the tensor, block by block (cache-sized blocks,
   any number of threads): count ``a >= lo`` and ``a > hi`` and collect the
   few values inside the band ``lo <= a <= hi``.
3. **Exact answer:** if the counts confirm the bracket, ``T`` is the
   ``(k - #{a > hi})``-th largest value of the band (a small ``kthvalue``); if
   they do not (a miss), the caller falls back to an exact radix selection.

Only the speed depends on the random sample; the value returned is always the
k-th largest magnitude, the same one a full sort would give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "Bracket",
    "BandCount",
    "bracket_from_sample",
    "count_band",
    "kth_largest",
    "resolve_bracket",
    "sample_size",
]


def sample_size(n: int) -> int:
    """Sample size for a tensor of ``n`` elements: about ``n ** (2/3)``.

    This balances the cost of two selections on the sample against the size
    of the band (which shrinks like ``1 / sqrt(m)``).
    """
    return min(n, max(4096, int(n ** (2.0 / 3.0))))


def kth_largest(values: torch.Tensor, k: int) -> float:
    """The k-th largest element (1-based) of a 1-D tensor."""
    n = values.numel()
    if not 1 <= k <= n:
        raise ValueError(f"k: got {k}, expected 1 <= k <= {n}")
    if values.dtype == torch.float32 and values.device.type == "cpu":
        # numpy's introselect is several times faster than torch.kthvalue on
        # the CPU; both order NaN above everything (magnitudes are never -0.0,
        # the one value the two may order differently).
        a = values.detach().contiguous().numpy()
        return float(np.partition(a, n - k)[n - k])
    return float(torch.kthvalue(values, n - k + 1).values)


@dataclass(frozen=True)
class Bracket:
    """A guess ``lo <= T <= hi`` for the k-th largest of n magnitudes.

    Attributes:
        n: Number of elements.
        k: Rank of the wanted value (k-th largest), ``1 <= k <= n``.
        lo: Lower end (counts use ``a >= lo``).
        hi: Upper end (counts use ``a > hi``).
    """

    n: int
    k: int
    lo: float
    hi: float


@dataclass(frozen=True)
class BandCount:
    """Result of the counting pass over one block.

    Attributes:
        at_least_lo: ``#{a >= lo}``.
        above_hi: ``#{a > hi}``.
        band: The values with ``lo <= a <= hi`` (None when ``lo == hi``: they
            are all equal to it).
    """

    at_least_lo: int
    above_hi: int
    band: torch.Tensor | None


def bracket_from_sample(
    sample: torch.Tensor, n: int, k: int, z: float = 4.5
) -> Bracket:
    """Bracket the k-th largest of n magnitudes from a random sample of them.

    Args:
        sample: (m,) magnitudes drawn uniformly (with replacement) from the n.
        n: Number of elements of the whole tensor.
        k: Rank wanted, ``1 <= k <= n``.
        z: Width of the bracket in binomial standard deviations.

    Returns:
        The bracket (``hi = inf`` or ``lo = 0`` where the sample cannot bound
        that side).
    """
    if not 1 <= k <= n:
        raise ValueError(f"k: got {k}, expected 1 <= k <= {n}")
    m = sample.numel()
    p = k / n
    mean = p * m
    sd = math.sqrt(m * p * (1.0 - p))
    r_hi = math.floor(mean - z * sd - 1.0)  # sample rank (1 = largest)
    r_lo = math.ceil(mean + z * sd + 1.0)
    hi = kth_largest(sample, r_hi) if r_hi >= 1 else math.inf
    lo = kth_largest(sample, r_lo) if r_lo <= m else 0.0
    return Bracket(n=n, k=k, lo=min(lo, hi), hi=hi)


def count_band(magnitude: torch.Tensor, bracket: Bracket) -> BandCount:
    """Counting pass over one block of magnitudes.

    Runs on numpy views of the block: its vectorised comparisons, boolean
    counts and ``compress`` are several times faster on CPU than torch's
    boolean comparisons and ``masked_select``.

    Args:
        magnitude: (L,) fp32 non-negative block (contiguous, on the CPU).
        bracket: The bracket to check.

    Returns:
        The block's counts and band values (a fresh tensor).
    """
    a = magnitude.contiguous().numpy()
    lo, hi = np.float32(bracket.lo), np.float32(bracket.hi)
    at_lo = a >= lo
    above = a > hi
    at_least_lo = int(np.count_nonzero(at_lo))
    above_hi = int(np.count_nonzero(above))
    if bracket.lo == bracket.hi:
        return BandCount(at_least_lo, above_hi, None)
    if at_least_lo == above_hi:
        return BandCount(at_least_lo, above_hi, magnitude.new_empty(0))
    in_band = np.logical_xor(at_lo, above, out=at_lo)  # lo <= a <= hi
    return BandCount(at_least_lo, above_hi, torch.from_numpy(np.compress(in_band, a)))


def resolve_bracket(bracket: Bracket, parts: Sequence[BandCount]) -> float | None:
    """The exact k-th largest from the blocks' counts, or None on a miss.

    A miss (the k-th largest lies outside ``[lo, hi]``) happens with tiny
    probability; the caller then uses an exact fallback.
    """
    at_least_lo = sum(p.at_least_lo for p in parts)
    above_hi = sum(p.above_hi for p in parts)
    if not above_hi < bracket.k <= at_least_lo:
        return None
    if bracket.lo == bracket.hi:
        return bracket.lo
    band = torch.cat([p.band for p in parts if p.band is not None])
    # The band holds at_least_lo - above_hi values; the wanted one has rank
    # k - above_hi among them.
    return kth_largest(band, bracket.k - above_hi)
