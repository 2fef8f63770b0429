"""Bounded breadth-first search over the co-occurrence graph, many sources at once.

Shortest-path lengths d(i, j) are what the collaborative-relation types are made
of: d = 1 is a 0-hop relation (direct co-occurrence), d = 2 a 1-hop relation,
and so on. Distances are never stored as an n x n matrix. Instead, BFS runs from
a batch of sources at a time with one bit per source: the frontier is an
(n_items, W) array of 64-bit words (W = ceil(batch / 64)) and one hop is a
bitwise OR over each item's neighbours, so one pass over the edges advances 64
searches. The search stops at the hop cap H, or earlier when every frontier is
empty. Only what callers ask for is kept: a streaming histogram of pair
distances and the distances (or shortest-path counts) of requested pairs.

Reference: X. Zhang et al., arXiv:2511.06905; batched frontier BFS in the
spirit of bit-parallel multi-source BFS (Then et al., VLDB 2015).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from tamis.core.progress import progress

__all__ = [
    "UNREACHED",
    "BitsetBFS",
    "PassResult",
    "distance_pass",
    "pair_distances",
    "pair_histogram",
    "shortest_path_counts",
]

#: Distance code for pairs farther apart than the hop cap, or unconnected.
UNREACHED = -1

_WORD = 64
_ONE = np.uint64(1)


class BitsetBFS:
    """Bit-parallel BFS engine over one symmetric adjacency matrix.

    Args:
        adjacency: Symmetric sparse matrix (n, n); nonzero entries are edges and
            their values are ignored.
        max_bytes: Memory bound of the gathered-neighbour buffer of one hop.
    """

    def __init__(self, adjacency: sp.spmatrix, max_bytes: int = 256 << 20) -> None:
        csr = sp.csr_matrix(adjacency)
        csr.eliminate_zeros()
        self.n = csr.shape[0]
        self.indices = csr.indices.astype(np.int64)  # (E,) neighbour of each edge
        degree = np.diff(csr.indptr)
        self.rows = np.repeat(np.arange(self.n, dtype=np.int64), degree)  # (E,)
        self.max_bytes = max_bytes

    def hop(self, frontier: np.ndarray) -> np.ndarray:
        """Items adjacent to the frontier, per source bit.

        Args:
            frontier: (n, W) uint64; bit b of row u is set when u is on the
                frontier of source b.

        Returns:
            (n, W) uint64 ``out`` with ``out[v] = OR of frontier[u]`` over the
            neighbours u of v.
        """
        out = np.zeros_like(frontier)
        active = frontier.any(axis=1)  # (n,)
        edges = np.flatnonzero(active[self.indices])  # edges leaving the frontier
        if edges.size == 0:
            return out
        chunk = max(1, self.max_bytes // (8 * frontier.shape[1]))
        for start in range(0, edges.size, chunk):
            sel = edges[start : start + chunk]
            gathered = frontier[self.indices[sel]]  # (m, W)
            rows = self.rows[sel]  # nondecreasing
            heads = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            # Rows are unique within a chunk, so the fancy |= does not lose bits.
            out[rows[heads]] |= np.bitwise_or.reduceat(gathered, heads, axis=0)
        return out

    def levels(
        self,
        sources: np.ndarray,
        max_hops: int,
        live: Callable[[int], np.ndarray] | None = None,
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(d, reached, columns)`` for d = 0, 1, ..., at most ``max_hops``.

        Args:
            sources: (B,) item ids, one per bit.
            max_hops: Hop cap H on the distance d.
            live: Optional callback, called after each level has been consumed,
                returning a (B,) bool mask of the sources still needed. Dead
                sources are dropped from the search (the bit arrays are
                repacked when at most half of the bits are live), which cuts the
                cost of later hops.

        Yields:
            ``reached``, (n, W) uint64, marks the items first reached at distance
            d from each source (d = 0: the source itself); ``columns`` (B,) is
            the current bit of each source, -1 once it was dropped.
        """
        width = (sources.size + _WORD - 1) // _WORD
        frontier = np.zeros((self.n, width), dtype=np.uint64)
        bits = np.arange(sources.size)
        masks = _ONE << (bits % _WORD).astype(np.uint64)
        np.bitwise_or.at(frontier, (sources, bits // _WORD), masks)
        visited = frontier.copy()
        columns = bits.copy()  # source -> current bit
        yield 0, frontier, columns
        for d in range(1, max_hops + 1):
            if live is not None:
                keep = live(d - 1) & (columns >= 0)
                if not keep.any():
                    return
                n_bits = int((columns >= 0).sum())
                if keep.sum() <= n_bits // 2:
                    kept_cols = columns[keep]
                    frontier = _select_bits(frontier, kept_cols)
                    visited = _select_bits(visited, kept_cols)
                    columns = np.full_like(columns, -1)
                    columns[keep] = np.arange(int(keep.sum()))
            reached = self.hop(frontier) & ~visited
            if not reached.any():
                return
            visited |= reached
            yield d, reached, columns
            frontier = reached


def _select_bits(words: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Repack the bit columns ``keep`` of (n, W) uint64 words into fewer words.

    Args:
        words: (n, W) uint64 bit arrays, bit b in word b // 64 at b % 64.
        keep: (K,) bit indices to keep, in their new order.

    Returns:
        (n, ceil(K / 64)) uint64.

    Raises:
        NotImplementedError: On a big-endian machine (bits are read as bytes).
    """
    if sys.byteorder != "little":
        raise NotImplementedError("bit repacking on big-endian machines")
    n = words.shape[0]
    width = (keep.size + _WORD - 1) // _WORD
    out = np.zeros((n, width), dtype=np.uint64)
    step = max(1, (64 << 20) // max(words.shape[1] * _WORD, 1))
    for lo in range(0, n, step):
        block = words[lo : lo + step].view(np.uint8)  # little-endian bytes
        flags = np.unpackbits(block, axis=1, bitorder="little")[:, keep]
        pad = np.zeros((flags.shape[0], width * _WORD), dtype=np.uint8)
        pad[:, : keep.size] = flags
        out[lo : lo + step] = np.packbits(pad, axis=1, bitorder="little").view(
            np.uint64
        )
    return out


@dataclass
class PassResult:
    """What one BFS pass collected.

    Attributes:
        histogram: (H + 1,) int64; entry d counts ordered (source, item) pairs at
            distance d, the source itself included at d = 0.
        distances: For each pair query, (P,) int8 distances, ``UNREACHED`` beyond
            the cap or when unconnected.
        n_sources: Number of distinct sources searched.
    """

    histogram: np.ndarray
    distances: list[np.ndarray]
    n_sources: int


def _bit_test(reached: np.ndarray, rows: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Whether bit ``bits[p]`` of row ``rows[p]`` is set, per query p."""
    words = reached[rows, bits // _WORD]
    return ((words >> (bits % _WORD).astype(np.uint64)) & _ONE).astype(bool)


def distance_pass(
    adjacency: sp.spmatrix,
    sources: ArrayLike,
    max_hops: int,
    queries: Sequence[tuple[ArrayLike, ArrayLike]] = (),
    batch_size: int = 2048,
    engine: BitsetBFS | None = None,
    show_progress: bool | None = None,
    groups: Sequence[ArrayLike | None] | None = None,
    count_histogram: bool = True,
) -> PassResult:
    """Run bounded BFS from every source; count distances and answer queries.

    Args:
        adjacency: Symmetric sparse adjacency (n, n).
        sources: Item ids to search from (duplicates are dropped).
        max_hops: Hop cap H (d <= H is resolved exactly).
        queries: Pair queries ``(src, dst)``, each two (P,) id arrays; every
            ``src`` must be among ``sources``.
        batch_size: Sources per batch (memory is about n * batch / 8 bytes for
            each of the frontier, the visited set and the reached set).
        engine: A prebuilt :class:`BitsetBFS` for ``adjacency`` (optional).
        show_progress: Progress bar switch (``None`` follows the process).
        groups: Per query, ``None`` or (P,) group ids. A grouped pair is only
            resolved while no pair of its group has been resolved at a smaller
            distance: the group's minimum distance and the pairs attaining it
            are exact, the others stay ``UNREACHED``. This is all that relation
            typing needs (a sample's minimum and whether it is pure).
        count_histogram: Count the distance histogram. When ``False``, sources
            whose queries are all answered are dropped from the search.

    Returns:
        A :class:`PassResult` (a zero histogram when not counted).

    Raises:
        ValueError: If ``max_hops < 1`` or a query source is not a source.
    """
    if max_hops < 1:
        raise ValueError(f"max_hops must be >= 1, got {max_hops}")
    engine = engine or BitsetBFS(adjacency)
    uniq = np.unique(np.asarray(sources, dtype=np.int64))
    histogram = np.zeros(max_hops + 1, dtype=np.int64)
    groups = list(groups) if groups is not None else [None] * len(queries)

    # Sort every query by its source's position so each batch owns a slice.
    prepared = []
    for (src, dst), group in zip(queries, groups, strict=True):
        src = np.asarray(src, dtype=np.int64).ravel()
        dst = np.asarray(dst, dtype=np.int64).ravel()
        pos = np.searchsorted(uniq, src)
        if src.size and (pos.max() >= uniq.size or np.any(uniq[pos] != src)):
            raise ValueError("every query source must be one of the BFS sources")
        order = np.argsort(pos, kind="stable")
        dist = np.full(src.size, UNREACHED, dtype=np.int8)
        if group is not None:
            _, group = np.unique(np.asarray(group).ravel(), return_inverse=True)
            group = group[order]
        prepared.append(_Query(pos[order], dst[order], order, dist, group))

    starts = range(0, uniq.size, batch_size)
    for b0 in progress(starts, desc="BFS batches", enabled=show_progress):
        batch = uniq[b0 : b0 + batch_size]
        views = [q.batch_view(b0, batch.size) for q in prepared]

        def live(_d: int, views: list = views, size: int = batch.size) -> np.ndarray:
            need = np.zeros(size, dtype=bool)
            for view in views:
                need[view.pending_sources()] = True
            return need

        pruning = None if count_histogram else live
        for d, reached, columns in engine.levels(batch, max_hops, pruning):
            if count_histogram:
                histogram[d] += int(np.bitwise_count(reached).sum())
            for view in views:
                view.record(d, reached, columns)
    return PassResult(histogram, [q.dist for q in prepared], int(uniq.size))


@dataclass
class _Query:
    """A pair query sorted by source position (internal to distance_pass)."""

    pos: np.ndarray  # (P,) source position in the sorted sources
    dst: np.ndarray  # (P,) destination items
    order: np.ndarray  # (P,) index of each sorted pair in the caller's order
    dist: np.ndarray  # (P,) int8 result, caller's order
    group: np.ndarray | None  # (P,) dense group ids or None

    def batch_view(self, b0: int, size: int) -> _QueryBatch:
        lo, hi = np.searchsorted(self.pos, [b0, b0 + size])
        group = None if self.group is None else self.group[lo:hi]
        return _QueryBatch(
            self.pos[lo:hi] - b0, self.dst[lo:hi], self.order[lo:hi], self.dist, group
        )


@dataclass
class _QueryBatch:
    """The pairs of one query whose source is in the current batch."""

    source: np.ndarray  # (p,) source index within the batch
    dst: np.ndarray
    idx: np.ndarray
    dist: np.ndarray
    group: np.ndarray | None

    def __post_init__(self) -> None:
        self.open = np.ones(self.source.size, dtype=bool)  # still to resolve
        if self.group is not None:
            _, self.group = np.unique(self.group, return_inverse=True)
            self.group_done = np.zeros(int(self.group.max(initial=-1)) + 1, bool)

    def record(self, d: int, reached: np.ndarray, columns: np.ndarray) -> None:
        """Mark the open pairs whose destination was reached at distance d."""
        sel = np.flatnonzero(self.open & (columns[self.source] >= 0))
        if sel.size == 0:
            return
        hit = _bit_test(reached, self.dst[sel], columns[self.source[sel]])
        done = sel[hit]
        self.dist[self.idx[done]] = d
        self.open[done] = False
        if self.group is not None:
            # Groups resolved at this level close all their other pairs.
            self.group_done[self.group[done]] = True
            self.open &= ~self.group_done[self.group]

    def pending_sources(self) -> np.ndarray:
        """Batch indices of sources with open pairs."""
        return self.source[self.open]


def pair_distances(
    adjacency: sp.spmatrix,
    src: ArrayLike,
    dst: ArrayLike,
    max_hops: int,
    batch_size: int = 2048,
    engine: BitsetBFS | None = None,
    show_progress: bool | None = None,
) -> np.ndarray:
    """Capped shortest-path length of each pair (src[p], dst[p]).

    BFS runs from whichever side has fewer distinct items (d is symmetric).

    Args:
        adjacency: Symmetric sparse adjacency (n, n).
        src: (P,) item ids.
        dst: (P,) item ids.
        max_hops: Hop cap H.
        batch_size: Sources per BFS batch.
        engine: A prebuilt :class:`BitsetBFS` (optional).
        show_progress: Progress bar switch.

    Returns:
        (P,) int8: 0 for identical items, d in 1..H, ``UNREACHED`` otherwise.
    """
    src = np.asarray(src, dtype=np.int64).ravel()
    dst = np.asarray(dst, dtype=np.int64).ravel()
    if np.unique(dst).size < np.unique(src).size:
        src, dst = dst, src
    result = distance_pass(
        adjacency, src, max_hops, [(src, dst)], batch_size, engine, show_progress
    )
    return result.distances[0]


def pair_histogram(
    adjacency: sp.spmatrix,
    items: ArrayLike,
    max_hops: int,
    sample_sources: int | None = None,
    seed: int = 0,
    batch_size: int = 2048,
    engine: BitsetBFS | None = None,
    show_progress: bool | None = None,
) -> dict[str, object]:
    """Number of unordered item pairs per shortest-path length d.

    Args:
        adjacency: Symmetric sparse adjacency (n, n).
        items: The item universe (e.g. every training item); pairs are counted
            among these. Items outside it must have no edges.
        max_hops: Hop cap H; farther or unconnected pairs go to ``beyond``.
        sample_sources: Search from this many sources drawn uniformly without
            replacement and scale up (an estimate); ``None`` searches from all.
        seed: Seed of the source sample.
        batch_size: Sources per BFS batch.
        engine: A prebuilt :class:`BitsetBFS` (optional).
        show_progress: Progress bar switch.

    Returns:
        ``{"pairs": {d: count}, "beyond": count, "total": n(n-1)/2,
        "exact": bool, "n_sources": int}``; counts are floats when estimated.
        ``sum(pairs) + beyond == total``.
    """
    items = np.unique(np.asarray(items, dtype=np.int64))
    n = items.size
    total = n * (n - 1) // 2
    sources = items
    exact = sample_sources is None or sample_sources >= n
    if not exact:
        rng = np.random.default_rng(seed)
        sources = np.sort(rng.choice(items, size=sample_sources, replace=False))
    result = distance_pass(
        adjacency, sources, max_hops, (), batch_size, engine, show_progress
    )
    ordered = result.histogram[1:]
    if exact:
        pairs = {d + 1: int(c) // 2 for d, c in enumerate(ordered)}
        beyond = total - sum(pairs.values())
    else:
        # Each source sees n - 1 partners; scale the ordered counts to n sources.
        scale = n / (2.0 * sources.size)
        pairs = {d + 1: float(c) * scale for d, c in enumerate(ordered)}
        beyond = float(total) - sum(pairs.values())
    return {
        "pairs": pairs,
        "beyond": beyond,
        "total": total,
        "exact": exact,
        "n_sources": int(sources.size),
    }


def shortest_path_counts(
    adjacency: sp.spmatrix,
    src: ArrayLike,
    dst: ArrayLike,
    max_hops: int,
    batch_size: int = 64,
    show_progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance and number of shortest paths of each pair (redundancy).

    Path counts follow the BFS recursion sigma(v) = sum of sigma(u) over the
    neighbours u of v one level closer to the source, run as a sparse matrix
    times a dense (n, batch) block of counts.

    Args:
        adjacency: Symmetric sparse adjacency (n, n); values are ignored.
        src: (P,) item ids.
        dst: (P,) item ids.
        max_hops: Hop cap H.
        batch_size: Sources per batch; memory is about 3 * n * batch * 8 bytes.
        show_progress: Progress bar switch.

    Returns:
        ``(dist, count)``: (P,) int8 distances (``UNREACHED`` beyond the cap) and
        (P,) float64 numbers of shortest paths (1 for identical items, 0 when
        unreached); counts are exact below 2**53.
    """
    binary = sp.csr_matrix(adjacency, dtype=np.float64, copy=True)
    binary.data[:] = 1.0
    src = np.asarray(src, dtype=np.int64).ravel()
    dst = np.asarray(dst, dtype=np.int64).ravel()
    uniq, inverse = np.unique(src, return_inverse=True)
    dist = np.full(src.size, UNREACHED, dtype=np.int8)
    count = np.zeros(src.size, dtype=np.float64)
    starts = range(0, uniq.size, batch_size)
    for b0 in progress(starts, desc="path counts", enabled=show_progress):
        batch = uniq[b0 : b0 + batch_size]
        mine = np.flatnonzero((inverse >= b0) & (inverse < b0 + batch.size))
        cols = inverse[mine] - b0
        sigma = np.zeros((binary.shape[0], batch.size))  # (n, B) path counts
        sigma[batch, np.arange(batch.size)] = 1.0
        visited = sigma > 0
        hit = visited[dst[mine], cols]
        dist[mine[hit]], count[mine[hit]] = 0, 1.0
        for d in range(1, max_hops + 1):
            sigma = binary @ sigma  # (n, B)
            new = (sigma > 0) & ~visited
            if not new.any():
                break
            sigma[~new] = 0.0
            visited |= new
            hit = new[dst[mine], cols]
            dist[mine[hit]] = d
            count[mine[hit]] = sigma[dst[mine[hit]], cols[hit]]
    return dist, count
