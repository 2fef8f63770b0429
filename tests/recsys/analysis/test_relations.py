"""Per-sample relation typing, pure subsets and model breakdowns."""

from __future__ import annotations

import numpy as np
import pytest

from tamis.recsys.analysis import (
    UNREACHED,
    cooccurrence_graph,
    distance_codes,
    flatten_input_pairs,
    pair_distances,
    pair_histogram,
    planted_cluster_sequences,
    relation_labels,
    relation_shares,
    stratified_accuracy,
    training_items,
    type_samples,
)

# Training graph: 0-1-2-3 chain of sequences, 4-5 apart, 6 seen alone, 7 never.
TRAIN = [[0, 1], [1, 2], [2, 3], [4, 5], [6]]
N_ITEMS = 8
H = 3


def _typed(inputs, targets):
    adjacency = cooccurrence_graph(TRAIN, N_ITEMS)
    known = training_items(TRAIN, N_ITEMS)
    sample, x, y, _ = flatten_input_pairs(inputs, np.array(targets))
    dist = pair_distances(adjacency, y, x, H)
    return type_samples(len(inputs), sample, dist, targets, known, H)


def test_labels_and_codes():
    assert relation_labels(2) == ["repeat", "0-hop", "1-hop", ">1-hop/none", "cold"]
    assert distance_codes([0, 1, 3, UNREACHED], 3).tolist() == [0, 1, 3, 4]


def test_flatten_pairs_targets_and_lists():
    sample, x, y, slot = flatten_input_pairs([[5, 3, 5], [2]], np.array([7, 8]))
    assert sample.tolist() == [0, 0, 1]
    assert x.tolist() == [3, 5, 2] and y.tolist() == [7, 7, 8]
    assert slot.tolist() == [0, 0, 1]
    sample, x, r, slot = flatten_input_pairs([[1, 2], [3]], np.array([[7, 8], [9, 4]]))
    assert sample.tolist() == [0, 0, 0, 0, 1, 1]
    assert x.tolist() == [1, 2, 1, 2, 3, 3]
    assert r.tolist() == [7, 7, 8, 8, 9, 4]
    assert slot.tolist() == [0, 0, 1, 1, 2, 3]


def test_sample_types_known_answers():
    inputs = [[0, 1], [0], [0, 3], [0], [4], [0, 2], [1, 7]]
    targets = [1, 2, 3, 4, 5, 7, 1]
    types = _typed(inputs, targets)
    # repeat (1 in S); d(0,2)=2; min(d(0,3)=3, d(3,3)=0)... 3 is in S -> repeat;
    # 0 and 4 unconnected; 4-5 direct; 7 cold; 1 in S -> repeat.
    assert types.code.tolist() == [0, 2, 0, 4, 1, 5, 0]
    counts = types.counts()
    assert counts["repeat"] == 3 and counts["cold"] == 1 and counts["0-hop"] == 1
    assert sum(counts.values()) == len(inputs)


def test_min_distance_and_pure_subsets():
    inputs = [[0, 2], [1, 2], [0], [0, 6]]
    targets = [3, 3, 3, 3]  # d(0,3)=3, d(1,3)=2, d(2,3)=1, d(6,3)=none
    types = _typed(inputs, targets)
    assert types.code.tolist() == [1, 1, 3, 3]
    assert types.pure.tolist() == [False, False, True, False]
    subsets = types.subsets()
    assert subsets["direct"].tolist() == [True, True, False, False]
    assert subsets["no-direct"].tolist() == [False, False, True, True]
    assert subsets["pure 2-hop"].tolist() == [False, False, True, False]
    assert "pure 0-hop" not in subsets


def test_relation_shares_by_hand():
    labels = relation_labels(H)
    known = training_items(TRAIN, N_ITEMS)
    # Sample 0: inputs {0, 1}, list [2, 7]; sample 1: inputs {4}, list [5, 4].
    sample, x, r, slot = flatten_input_pairs([[0, 1], [4]], np.array([[2, 7], [5, 4]]))
    adjacency = cooccurrence_graph(TRAIN, N_ITEMS)
    dist = pair_distances(adjacency, r, x, H)
    shares = relation_shares(sample, r, dist, known, labels, H, list_slot=slot)
    # pairs: (2,0)=d2 (2,1)=d1 (7,0)=cold (7,1)=cold (5,4)=d1 (4,4)=repeat
    assert shares["pairs"]["0-hop"] == pytest.approx(2 / 6)
    assert shares["pairs"]["1-hop"] == pytest.approx(1 / 6)
    assert shares["pairs"]["cold"] == pytest.approx(2 / 6)
    assert shares["pairs"]["repeat"] == pytest.approx(1 / 6)
    # items: 2 -> 0-hop (closest), 7 -> cold, 5 -> 0-hop, 4 -> repeat
    assert shares["items"]["0-hop"] == pytest.approx(0.5)
    assert sum(shares["items"].values()) == pytest.approx(1.0)


def test_stratified_accuracy_by_hand():
    ranks = np.array([1, 3, 30, 2])
    subsets = {
        "a": np.array([True, True, False, False]),
        "b": np.array([0, 0, 1, 1], bool),
    }
    subsets["empty"] = np.zeros(4, bool)
    table = stratified_accuracy(ranks, subsets, ks=[10])
    assert table["a"] == pytest.approx(
        {"n": 2, "HR@10": 1.0, "NDCG@10": (1 + 0.5) / 2, "MRR@10": (1 + 1 / 3) / 2}
    )
    assert table["b"]["HR@10"] == 0.5
    assert table["b"]["NDCG@10"] == pytest.approx(1 / np.log2(3) / 2)
    assert "empty" not in table


def test_planted_clusters_stay_inside_their_cluster_without_crossing():
    seqs = planted_cluster_sequences(60, 3, 200, cross_rate=0.0, seed=1)
    for seq in seqs:
        assert len(set((seq % 3).tolist())) == 1


def test_cross_cluster_rate_moves_mass_to_low_hops():
    n, low, beyond = 240, [], []
    for rate in [0.0, 0.02, 0.1, 0.4]:
        seqs = planted_cluster_sequences(n, 4, 250, 3, 6, rate, seed=7)
        adjacency = cooccurrence_graph(seqs, n)
        hist = pair_histogram(adjacency, np.flatnonzero(training_items(seqs, n)), 6)
        total = hist["total"]
        low.append((hist["pairs"][1] + hist["pairs"][2]) / total)
        beyond.append(hist["beyond"] / total)
    assert all(a < b for a, b in zip(low, low[1:], strict=False))
    assert all(a >= b for a, b in zip(beyond, beyond[1:], strict=False))
    assert beyond[1] < beyond[0]
    assert beyond[0] > 0.7  # four disjoint clusters: 3/4 of pairs unconnected
