"""Co-occurrence graph and bounded BFS on graphs whose answers are known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from tamis.recsys.analysis import (
    UNREACHED,
    cooccurrence_graph,
    distance_pass,
    multiplicity_histogram,
    pair_distances,
    pair_histogram,
    sequence_pairs,
    shortest_path_counts,
)


def _all_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(n, k=1)
    return i, j


def _graph_from_edges(n: int, edges: list[tuple[int, int]]) -> sp.csr_matrix:
    return cooccurrence_graph([np.array(e) for e in edges], n)


def _nonzero(hist: dict) -> dict:
    return {d: c for d, c in hist["pairs"].items() if c}


def _random_graph(n: int, p: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    i, j = _all_pairs(n)
    keep = rng.random(i.size) < p
    return _graph_from_edges(n, list(zip(i[keep], j[keep], strict=True)))


# ---------------------------------------------------------------------------
# Graph construction


def test_chain_of_sequences_gives_distance_three():
    adjacency = cooccurrence_graph([[0, 1], [1, 2], [2, 3]], 4)
    assert pair_distances(adjacency, [0], [3], max_hops=6).tolist() == [3]


def test_one_sequence_is_a_clique_with_unit_counts():
    adjacency = cooccurrence_graph([[0, 1, 2, 3, 4]], 5)
    dense = adjacency.toarray()
    assert np.array_equal(dense, np.ones((5, 5), int) - np.eye(5, dtype=int))
    i, j = _all_pairs(5)
    assert set(pair_distances(adjacency, i, j, 6).tolist()) == {1}


def test_counts_are_per_sequence_not_per_occurrence():
    adjacency = cooccurrence_graph([[0, 1, 0, 1], [1, 0], [2, 1]], 3)
    assert adjacency[0, 1] == 2 and adjacency[1, 0] == 2
    assert adjacency[1, 2] == 1 and adjacency[0, 2] == 0
    assert adjacency.diagonal().sum() == 0
    assert multiplicity_histogram(adjacency) == {1: 1, 2: 1}


def test_window_one_joins_only_consecutive_items():
    i, j = sequence_pairs([3, 1, 4, 1, 5], window=1)
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == [(1, 3), (1, 4), (1, 5)]
    clique = cooccurrence_graph([[0, 1, 2, 3]], 4)
    window = cooccurrence_graph([[0, 1, 2, 3]], 4, window=1)
    assert clique.nnz == 12 and window.nnz == 6
    assert pair_distances(window, [0], [3], 6).tolist() == [3]


def test_bad_ids_and_window_are_rejected():
    with pytest.raises(ValueError, match="sequence 1"):
        cooccurrence_graph([[0, 1], [2, 5]], 4)
    with pytest.raises(ValueError, match="window"):
        cooccurrence_graph([[0, 1]], 2, window=0)


# ---------------------------------------------------------------------------
# Known-answer graphs: path, star, two disjoint cliques


def test_path_graph_exact_distances_and_histogram():
    n = 9
    adjacency = _graph_from_edges(n, [(k, k + 1) for k in range(n - 1)])
    i, j = _all_pairs(n)
    assert np.array_equal(pair_distances(adjacency, i, j, 10), j - i)
    hist = pair_histogram(adjacency, np.arange(n), max_hops=10)
    assert hist["pairs"] == {d: max(n - d, 0) for d in range(1, 11)}
    assert hist["beyond"] == 0 and hist["total"] == n * (n - 1) // 2


def test_star_graph_hop_types():
    n = 7  # centre 0, leaves 1..6
    adjacency = _graph_from_edges(n, [(0, k) for k in range(1, n)])
    hist = pair_histogram(adjacency, np.arange(n), max_hops=6)
    assert _nonzero(hist) == {1: 6, 2: 15}
    assert pair_distances(adjacency, [1, 0, 3], [2, 5, 3], 6).tolist() == [2, 1, 0]


def test_two_disjoint_cliques():
    adjacency = cooccurrence_graph([[0, 1, 2, 3], [4, 5, 6]], 7)
    hist = pair_histogram(adjacency, np.arange(7), max_hops=6)
    assert _nonzero(hist) == {1: 6 + 3}
    assert hist["beyond"] == 4 * 3
    assert pair_distances(adjacency, [0, 4], [6, 6], 6).tolist() == [UNREACHED, 1]


# ---------------------------------------------------------------------------
# Capping, batching and agreement with a reference implementation


@pytest.mark.parametrize("cap", [1, 2, 3, 5])
def test_capping_is_exact_up_to_the_cap(cap):
    n = 150  # more than 64 sources: several words per frontier row
    adjacency = _graph_from_edges(n, [(k, k + 1) for k in range(n - 1)])
    i, j = _all_pairs(n)
    dist = pair_distances(adjacency, i, j, cap, batch_size=70)
    expected = np.where(j - i <= cap, j - i, UNREACHED)
    assert np.array_equal(dist, expected)
    hist = pair_histogram(adjacency, np.arange(n), cap, batch_size=64)
    assert hist["pairs"] == {d: n - d for d in range(1, cap + 1)}
    assert sum(hist["pairs"].values()) + hist["beyond"] == n * (n - 1) // 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distances_match_scipy_on_random_graphs(seed):
    n = 90
    adjacency = _random_graph(n, 0.03, seed)
    reference = shortest_path(adjacency, unweighted=True, directed=False)
    i, j = _all_pairs(n)
    cap = 4
    want = reference[i, j]
    want = np.where(want <= cap, want, UNREACHED).astype(int)
    assert np.array_equal(pair_distances(adjacency, i, j, cap, batch_size=64), want)
    hist = pair_histogram(adjacency, np.arange(n), cap)
    for d in range(1, cap + 1):
        assert hist["pairs"].get(d, 0) == int((reference[i, j] == d).sum())
    assert sum(hist["pairs"].values()) + hist["beyond"] == n * (n - 1) // 2


def test_sampled_histogram_with_every_source_is_exact():
    adjacency = _random_graph(40, 0.1, 3)
    full = pair_histogram(adjacency, np.arange(40), 4)
    sampled = pair_histogram(adjacency, np.arange(40), 4, sample_sources=40)
    assert sampled == full
    estimate = pair_histogram(adjacency, np.arange(40), 4, sample_sources=10)
    assert not estimate["exact"] and estimate["n_sources"] == 10
    total = sum(estimate["pairs"].values()) + estimate["beyond"]
    assert total == pytest.approx(40 * 39 / 2)


# ---------------------------------------------------------------------------
# Shortest-path counts (redundancy) against brute-force enumeration


def _brute_force_counts(adjacency: sp.csr_matrix, s: int, t: int) -> tuple[int, int]:
    """(d, number of shortest paths) by enumerating every simple path."""
    n = adjacency.shape[0]
    dense = adjacency.toarray() > 0
    if s == t:
        return 0, 1
    lengths = []
    others = [v for v in range(n) if v not in (s, t)]
    for r in range(len(others) + 1):
        for middle in itertools.permutations(others, r):
            path = (s, *middle, t)
            if all(dense[a, b] for a, b in itertools.pairwise(path)):
                lengths.append(len(path) - 1)
    if not lengths:
        return UNREACHED, 0
    shortest = min(lengths)
    return shortest, lengths.count(shortest)


@pytest.mark.parametrize("n, p, seed", [(6, 0.5, 0), (7, 0.45, 1), (8, 0.35, 2)])
def test_path_counts_match_brute_force(n, p, seed):
    adjacency = _random_graph(n, p, seed)
    src, dst = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    dist, count = shortest_path_counts(
        adjacency, src.ravel(), dst.ravel(), max_hops=n, batch_size=3
    )
    for s, t, d, c in zip(src.ravel(), dst.ravel(), dist, count, strict=True):
        assert (d, c) == _brute_force_counts(adjacency, s, t)


def test_path_counts_on_a_grid_are_binomial():
    # A 4 x 4 grid: corner to corner has C(6, 3) = 20 shortest paths of length 6.
    def node(r, c):
        return 4 * r + c

    edges = [(node(r, c), node(r, c + 1)) for r in range(4) for c in range(3)]
    edges += [(node(r, c), node(r + 1, c)) for r in range(3) for c in range(4)]
    adjacency = _graph_from_edges(16, edges)
    dist, count = shortest_path_counts(adjacency, [0, 0], [15, 5], max_hops=8)
    assert dist.tolist() == [6, 2] and count.tolist() == [20.0, 2.0]
    dist, count = shortest_path_counts(adjacency, [0], [15], max_hops=5)
    assert dist.tolist() == [UNREACHED] and count.tolist() == [0.0]


# ---------------------------------------------------------------------------
# Dropping answered sources and grouped (minimum-only) queries


@pytest.mark.parametrize("seed", [0, 1])
def test_dropping_answered_sources_keeps_distances(seed):
    n = 300
    adjacency = _random_graph(n, 0.012, seed)
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(n, size=2000), rng.integers(n, size=2000)
    full = distance_pass(adjacency, src, 5, [(src, dst)], batch_size=256)
    pruned = distance_pass(
        adjacency, src, 5, [(src, dst)], batch_size=256, count_histogram=False
    )
    assert np.array_equal(full.distances[0], pruned.distances[0])
    assert pruned.histogram.sum() == 0


@pytest.mark.parametrize("seed", [2, 3])
def test_grouped_queries_keep_minimum_and_its_pairs(seed):
    n = 250
    adjacency = _random_graph(n, 0.012, seed)
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(400), 5)  # 400 samples of 5 input items
    target = np.repeat(rng.integers(n, size=400), 5)
    item = rng.integers(n, size=group.size)
    exact = pair_distances(adjacency, target, item, 5)
    result = distance_pass(
        adjacency,
        target,
        5,
        [(target, item)],
        batch_size=128,
        groups=[group],
        count_histogram=False,
    )
    grouped = result.distances[0]
    big = np.where(exact == UNREACHED, 99, exact)
    got = np.where(grouped == UNREACHED, 99, grouped)
    for g in range(400):
        rows = group == g
        assert got[rows].min() == big[rows].min()
        # Exactly the pairs at the group's minimum are resolved.
        at_min = big[rows] == big[rows].min()
        assert np.array_equal(got[rows] == big[rows].min(), at_min)


def test_select_bits_repacks_columns():
    from tamis.recsys.analysis.bfs import _select_bits

    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**63, size=(7, 3), dtype=np.uint64)
    flags = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")
    keep = np.array([0, 5, 64, 100, 191, 3])
    packed = _select_bits(words, keep)
    again = np.unpackbits(packed.view(np.uint8), axis=1, bitorder="little")
    assert packed.shape == (7, 1)
    assert np.array_equal(again[:, : keep.size], flags[:, keep])
    assert not again[:, keep.size :].any()
