"""Global item co-occurrence graph built from training sequences.

Each training sequence becomes a local graph over its distinct items (a clique by
default, or only the pairs at most ``window`` positions apart); the union of the
local graphs is the global graph G. Edge weights count the sequences in which a
pair co-occurs, so a pair seen three times in one sequence still counts once.

Reference: X. Zhang et al., "Have We Really Understood Collaborative
Information? An Empirical Investigation", arXiv:2511.06905 (WSDM 2026).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from tamis.core.progress import progress

__all__ = [
    "cooccurrence_graph",
    "sequence_pairs",
    "multiplicity_histogram",
    "training_items",
]

log = logging.getLogger(__name__)

#: Pair entries buffered before they are folded into the sparse accumulator.
_FLUSH_PAIRS = 8_000_000


@lru_cache(maxsize=256)
def _upper_pairs(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (a, b) with a < b for a clique on ``m`` positions."""
    return np.triu_indices(m, k=1)


def sequence_pairs(
    sequence: ArrayLike, window: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct unordered item pairs of one sequence, each once.

    Args:
        sequence: Item ids in time order, shape (L,).
        window: ``None`` joins every two distinct items (a clique); an integer w
            joins only items at most w positions apart (w = 1: consecutive pairs).

    Returns:
        Two arrays ``(i, j)`` of equal length with ``i < j`` elementwise and no
        repeated pair.
    """
    seq = np.asarray(sequence, dtype=np.int64).ravel()
    if window is None:
        items = np.unique(seq)  # sorted, so i < j below
        a, b = _upper_pairs(items.size)
        return items[a], items[b]
    left, right = [], []
    for k in range(1, min(window, seq.size - 1) + 1):
        left.append(seq[:-k])
        right.append(seq[k:])
    if not left:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    u, v = np.concatenate(left), np.concatenate(right)
    keep = u != v
    i, j = np.minimum(u[keep], v[keep]), np.maximum(u[keep], v[keep])
    base = int(seq.max()) + 1
    key = np.unique(i * base + j)  # one entry per distinct pair
    return key // base, key % base


def _fold(rows: list[np.ndarray], cols: list[np.ndarray], n: int) -> sp.csr_matrix:
    """Sum buffered (i, j) entries into an upper-triangular count matrix."""
    i, j = np.concatenate(rows), np.concatenate(cols)
    ones = np.ones(i.size, dtype=np.int32)
    return sp.csr_matrix((ones, (i, j)), shape=(n, n), dtype=np.int32)


def cooccurrence_graph(
    sequences: Iterable[ArrayLike],
    n_items: int,
    window: int | None = None,
    show_progress: bool | None = None,
) -> sp.csr_matrix:
    """Build the global co-occurrence graph G as a symmetric sparse matrix.

    Args:
        sequences: Training sequences of item ids in ``[0, n_items)``. Build G from
            the original sequences, not from prefix-augmented training samples,
            or the counts grow with sequence length.
        n_items: Number of item ids (size of the matrix).
        window: ``None`` for the clique rule (every pair of a sequence); w >= 1
            for a sliding window of w positions.
        show_progress: Progress bar switch (``None`` follows the process).

    Returns:
        CSR matrix A of shape (n_items, n_items), int32, symmetric, zero diagonal;
        ``A[i, j]`` is the number of sequences in which i and j co-occur.

    Raises:
        ValueError: If an id is outside ``[0, n_items)`` or ``window < 1``.
    """
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1 or None, got {window}")
    upper = sp.csr_matrix((n_items, n_items), dtype=np.int32)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    buffered = 0
    seqs = sequences if isinstance(sequences, Sequence) else list(sequences)
    for index, seq in enumerate(
        progress(seqs, desc="co-occurrence", enabled=show_progress)
    ):
        arr = np.asarray(seq, dtype=np.int64).ravel()
        if arr.size and (arr.min() < 0 or arr.max() >= n_items):
            raise ValueError(
                f"sequence {index}: item ids must lie in [0, {n_items}), "
                f"found {int(arr.min())}..{int(arr.max())}"
            )
        i, j = sequence_pairs(arr, window)
        rows.append(i)
        cols.append(j)
        buffered += i.size
        if buffered >= _FLUSH_PAIRS:
            upper = upper + _fold(rows, cols, n_items)
            rows, cols, buffered = [], [], 0
    if rows:
        upper = upper + _fold(rows, cols, n_items)
    adjacency = (upper + upper.T).tocsr()
    adjacency.sort_indices()
    log.debug("co-occurrence graph: %d items, %d edges", n_items, adjacency.nnz // 2)
    return adjacency


def training_items(sequences: Iterable[ArrayLike], n_items: int) -> np.ndarray:
    """Boolean mask (n_items,) of the items that occur in any training sequence."""
    seen = np.zeros(n_items, dtype=bool)
    for seq in sequences:
        seen[np.asarray(seq, dtype=np.int64)] = True
    return seen


def multiplicity_histogram(adjacency: sp.csr_matrix) -> dict[int, int]:
    """Number of co-occurring (0-hop) pairs per co-occurrence count c_ij.

    Args:
        adjacency: Symmetric count matrix from :func:`cooccurrence_graph`.

    Returns:
        ``{c: number of unordered pairs with c_ij == c}`` in increasing c.
    """
    upper = sp.triu(adjacency, k=1).tocsr()
    values, counts = np.unique(upper.data, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True) if v > 0}
