"""Hand-computed cases and invariants for tamis.recsys.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tamis.recsys import metrics as M

LOG2_3 = math.log2(3)
LOG2_4 = 2.0
LOG2_5 = math.log2(5)


# ---------------------------------------------------------------------------
# Single-target accuracy from 1-based ranks
# ---------------------------------------------------------------------------


def test_single_target_known_values():
    ranks = np.array([1, 2, 3, 10, 11])
    assert M.hit_rate(ranks, 10).tolist() == [1, 1, 1, 1, 0]
    assert M.hit_rate(ranks, 2).tolist() == [1, 1, 0, 0, 0]
    np.testing.assert_allclose(
        M.ndcg(ranks, 10), [1.0, 1 / LOG2_3, 0.5, 1 / math.log2(11), 0.0]
    )
    np.testing.assert_allclose(M.mrr(ranks, 10), [1.0, 0.5, 1 / 3, 0.1, 0.0])
    np.testing.assert_allclose(M.mrr(ranks, 2), [1.0, 0.5, 0.0, 0.0, 0.0])


def test_single_target_torch_in_torch_out():
    ranks = torch.tensor([1, 3, 20])
    out = M.ndcg(ranks, 5)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), [1.0, 0.5, 0.0], rtol=1e-6)
    assert M.hit_rate(ranks, 5).tolist() == [1.0, 1.0, 0.0]
    np.testing.assert_allclose(M.mrr(ranks, 5).numpy(), [1.0, 1 / 3, 0.0], rtol=1e-6)
    # float64 input keeps its precision
    assert M.ndcg(torch.tensor([2.0], dtype=torch.float64), 5).dtype == torch.float64


def test_single_target_rejects_bad_input():
    with pytest.raises(ValueError, match="1-based"):
        M.ndcg(np.array([0, 1]), 10)
    with pytest.raises(ValueError, match="1-based"):
        M.hit_rate(torch.tensor([0]), 10)
    with pytest.raises(ValueError, match="positive integer"):
        M.mrr(np.array([1]), 0)


def test_single_target_equals_multi_target_with_one_relevant_item():
    # A user whose target sits at rank r in the list: both paths must agree.
    lists = np.array([[5, 3, 9, 1], [2, 4, 6, 8], [7, 0, 1, 2]])
    targets = [[9], [8], [3]]  # ranks 3, 4, absent
    ranks = np.array([3, 4, 99])
    np.testing.assert_allclose(M.ndcg(ranks, 4), M.ndcg_at_k(lists, targets, 4))
    np.testing.assert_allclose(M.mrr(ranks, 4), M.mrr_at_k(lists, targets, 4))
    np.testing.assert_allclose(M.hit_rate(ranks, 4), M.hit_rate_at_k(lists, targets, 4))


# ---------------------------------------------------------------------------
# Multi-target accuracy
# ---------------------------------------------------------------------------

# Two users, lists of 5. User 0 relevant {1, 4, 7}: hits at ranks 1 and 3.
# User 1 relevant {9}: no hit in the top 5.
LISTS = np.array([[1, 2, 4, 5, 6], [0, 2, 3, 5, 8]])
RELEVANT = [{1, 4, 7}, {9}]


def test_multi_target_known_values():
    np.testing.assert_allclose(M.hit_rate_at_k(LISTS, RELEVANT, 5), [1.0, 0.0])
    np.testing.assert_allclose(M.recall_at_k(LISTS, RELEVANT, 5), [2 / 3, 0.0])
    np.testing.assert_allclose(M.recall_at_k(LISTS, RELEVANT, 2), [1 / 3, 0.0])
    np.testing.assert_allclose(M.precision_at_k(LISTS, RELEVANT, 5), [2 / 5, 0.0])
    np.testing.assert_allclose(M.precision_at_k(LISTS, RELEVANT, 3), [2 / 3, 0.0])
    # DCG = 1 + 1/log2(4); IDCG (3 relevant) = 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 + 1 / LOG2_4
    idcg = 1 + 1 / LOG2_3 + 1 / LOG2_4
    np.testing.assert_allclose(M.ndcg_at_k(LISTS, RELEVANT, 5), [dcg / idcg, 0.0])
    # K=2: one hit; IDCG with min(3, 2) = 2 relevant
    np.testing.assert_allclose(
        M.ndcg_at_k(LISTS, RELEVANT, 2), [1 / (1 + 1 / LOG2_3), 0.0]
    )
    # AP@5 = (P@1 * 1 + P@3 * 1) / min(3, 5) = (1 + 2/3) / 3
    np.testing.assert_allclose(M.map_at_k(LISTS, RELEVANT, 5), [(1 + 2 / 3) / 3, 0])
    # AP@3 with |R| = 3 -> same numerator, denominator 3
    np.testing.assert_allclose(M.map_at_k(LISTS, RELEVANT, 3), [(1 + 2 / 3) / 3, 0])
    # AP@1: one hit at rank 1, min(3, 1) = 1
    np.testing.assert_allclose(M.map_at_k(LISTS, RELEVANT, 1), [1.0, 0.0])
    np.testing.assert_allclose(M.mrr_at_k(LISTS, RELEVANT, 5), [1.0, 0.0])


def test_multi_target_perfect_list_scores_one():
    lists = np.array([[3, 1, 2, 0]])
    relevant = [{0, 1, 2, 3, 4, 5}]  # more relevant items than K
    for fn in (M.ndcg_at_k, M.map_at_k, M.precision_at_k, M.hit_rate_at_k):
        np.testing.assert_allclose(fn(lists, relevant, 4), [1.0])
    np.testing.assert_allclose(M.recall_at_k(lists, relevant, 4), [4 / 6])


def test_multi_target_dense_matrix_and_torch_agree_with_sets():
    dense = np.zeros((2, 10), dtype=bool)
    dense[0, [1, 4, 7]] = True
    dense[1, 9] = True
    for fn in (M.recall_at_k, M.ndcg_at_k, M.map_at_k, M.precision_at_k):
        np.testing.assert_allclose(fn(LISTS, dense, 5), fn(LISTS, RELEVANT, 5))
        np.testing.assert_allclose(
            fn(torch.from_numpy(LISTS), torch.from_numpy(dense), 5),
            fn(LISTS, RELEVANT, 5),
        )


def test_multi_target_padding_never_hits():
    lists = np.array([[4, -1, -1]])
    dense = np.zeros((1, 5), dtype=bool)
    dense[0, [0, 4]] = True  # item 0 must not match the padding slot
    np.testing.assert_allclose(M.recall_at_k(lists, dense, 3), [0.5])
    np.testing.assert_allclose(M.precision_at_k(lists, dense, 3), [1 / 3])


def test_multi_target_errors_name_the_problem():
    with pytest.raises(ValueError, match="row 1 has no relevant item"):
        M.recall_at_k(LISTS, [{1}, set()], 5)
    with pytest.raises(ValueError, match="2 lists"):
        M.recall_at_k(LISTS, [{1}], 5)
    with pytest.raises(ValueError, match="2-D"):
        M.recall_at_k(np.array([1, 2]), [{1}], 5)
    with pytest.raises(ValueError, match="covers only 3 items"):
        M.recall_at_k(LISTS, np.ones((2, 3), dtype=bool), 5)


# ---------------------------------------------------------------------------
# Exposure: coverage, Gini, entropy, long tail, novelty
# ---------------------------------------------------------------------------

# 3 users, K=2, catalogue of 5 items: counts = [3, 2, 1, 0, 0]
EXPOSURE = np.array([[0, 1], [0, 1], [0, 2]])


def test_recommendation_counts_and_coverage():
    assert M.recommendation_counts(EXPOSURE, 5, 2).tolist() == [3, 2, 1, 0, 0]
    assert M.recommendation_counts(EXPOSURE, 5, 1).tolist() == [3, 0, 0, 0, 0]
    assert M.item_coverage(EXPOSURE, 5, 2) == pytest.approx(3 / 5)
    assert M.item_coverage(EXPOSURE, 5, 1) == pytest.approx(1 / 5)
    assert M.item_coverage(np.array([[0, -1]]), 5, 2) == pytest.approx(1 / 5)


def test_gini_index_known_values():
    # sorted counts [0, 0, 1, 2, 3], n = 5, total 6:
    # sum (2i - 6) x_i = (0)(1) + (2)(2) + (4)(3) = 16 -> 16 / 30
    assert M.gini_index(EXPOSURE, 5, 2) == pytest.approx(16 / 30)
    # equal exposure -> 0
    assert M.gini_index(np.array([[0, 1], [2, 3]]), 4, 2) == pytest.approx(0.0)
    # all slots on one item -> (n - 1) / n
    assert M.gini_index(np.array([[2], [2]]), 4, 1) == pytest.approx(3 / 4)


def test_shannon_entropy_known_values():
    p = np.array([3, 2, 1]) / 6
    expected = -(p * np.log(p)).sum()
    assert M.shannon_entropy(EXPOSURE, 5, 2) == pytest.approx(expected)
    assert M.shannon_entropy(EXPOSURE, 5, 2, base=2) == pytest.approx(
        expected / math.log(2)
    )
    uniform = np.array([[0, 1], [2, 3]])
    assert M.shannon_entropy(uniform, 4, 2, base=2) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="empty"):
        M.shannon_entropy(np.array([[-1]]), 3, 1)


def test_long_tail_items_and_tail_share():
    pop = np.array([50, 3, 10, 3, 1, 0, 7, 2, 2, 20])
    # head = ceil(0.2 * 10) = 2 most popular: items 0 (50) and 9 (20)
    tail = M.long_tail_items(pop, quantile=0.8)
    assert np.flatnonzero(~tail).tolist() == [0, 9]
    # 0.5 -> 5 head items: 0, 9, 2, 6, then the tie 1/3 broken by id -> 1
    tail_half = M.long_tail_items(pop, quantile=0.5)
    assert np.flatnonzero(~tail_half).tolist() == [0, 1, 2, 6, 9]
    assert M.long_tail_items(pop, 1.0).all()
    assert not M.long_tail_items(pop, 0.0).any()

    lists = np.array([[0, 9, 4], [5, 4, 9], [1, -1, -1]])
    np.testing.assert_allclose(M.tail_share(lists, tail, 3), [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(M.tail_share(lists, tail, 1), [0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="quantile"):
        M.long_tail_items(pop, 1.5)


def test_novelty_known_values():
    pop = np.array([8, 4, 2, 1, 0])
    lists = np.array([[0, 1], [2, 3], [4, -1]])
    # n_users = 8: -log2(p) = [0, 1, 2, 3, 3 (zero popularity counted once)]
    np.testing.assert_allclose(M.novelty(lists, pop, 2, n_users=8), [0.5, 2.5, 3.0])
    # normalised by total interactions 16 (zero pop floored to 1 -> 16)
    np.testing.assert_allclose(
        M.novelty(lists, pop, 2), [(1 + 2) / 2, (3 + 4) / 2, 4.0]
    )
    with pytest.raises(ValueError, match="n_users"):
        M.novelty(lists, pop, 2, n_users=4)


# ---------------------------------------------------------------------------
# Intra-list diversity, category coverage
# ---------------------------------------------------------------------------


def test_intra_list_diversity_known_values():
    emb = np.array(
        [
            [1.0, 0.0],
            [0.0, 2.0],  # orthogonal to item 0
            [-3.0, 0.0],  # opposite to item 0
            [1.0, 1.0],  # 45 degrees to items 0 and 1
        ]
    )
    lists = np.array([[0, 1, 2], [0, 0, -1], [3, -1, -1], [0, 3, 1]])
    c45 = 1 - math.sqrt(0.5)
    expected = [
        (1 + 2 + 1) / 3,  # pairs (0,1): 1, (0,2): 2, (1,2): 1
        0.0,  # identical items
        0.0,  # one item: no pair
        (c45 + 1 + c45) / 3,  # pairs (0,3), (0,1), (3,1)
    ]
    np.testing.assert_allclose(M.intra_list_diversity(lists, emb, 3), expected)
    # invariant to the scale of each embedding
    scaled = emb * np.array([[2.0], [0.5], [7.0], [3.0]])
    np.testing.assert_allclose(M.intra_list_diversity(lists, scaled, 3), expected)
    with pytest.raises(ValueError, match="zero embedding"):
        M.intra_list_diversity(np.array([[0, 1]]), np.zeros((2, 2)), 2)


# item -> categories: 0 {a}, 1 {a, b}, 2 {b}, 3 {}, 4 {a}
CATS = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]])


def test_category_diversity_known_values():
    lists = np.array([[0, 1, 2], [0, 4, -1], [3, 3, -1]])
    # Jaccard distances: (0,1) 1-1/2, (0,2) 1, (1,2) 1-1/2 -> mean 2/3
    np.testing.assert_allclose(
        M.category_diversity(lists, CATS, 3, "jaccard"), [2 / 3, 0.0, 0.0]
    )
    # differ: all three pairs have different sets -> 1; {a} vs {a} -> 0
    np.testing.assert_allclose(
        M.category_diversity(lists, CATS, 3, "differ"), [1.0, 0.0, 0.0]
    )
    mixed = np.array([[0, 3, 4]])  # {a}, {}, {a}: Jaccard 1, 0, 1 -> 2/3
    np.testing.assert_allclose(M.category_diversity(mixed, CATS, 3), [2 / 3])
    np.testing.assert_allclose(M.category_diversity(mixed, CATS, 3, "differ"), [2 / 3])
    with pytest.raises(ValueError, match="measure"):
        M.category_diversity(lists, CATS, 3, "cosine")


def test_category_coverage_known_values():
    lists = np.array([[0, 1, 2], [0, 4, -1], [3, -1, -1]])
    np.testing.assert_allclose(M.category_coverage(lists, CATS, 3), [2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(M.category_coverage(lists, CATS, 1), [1 / 3] * 2 + [0])


# ---------------------------------------------------------------------------
# alpha-NDCG: the worked example of Clarke et al., SIGIR 2008 (Section 5)
# ---------------------------------------------------------------------------

# Ten documents a..j judged against six nuggets (the example's Table 2).
CLARKE_NUGGETS = {
    "a": [2, 4],
    "b": [2],
    "c": [2],
    "d": [],
    "e": [1, 6],
    "f": [1],
    "g": [3],
    "h": [1],
    "i": [],
    "j": [],
}
CLARKE_DOCS = list(CLARKE_NUGGETS)


def _clarke_topics() -> np.ndarray:
    topics = np.zeros((10, 6), dtype=int)
    for row, nuggets in enumerate(CLARKE_NUGGETS.values()):
        for nugget in nuggets:
            topics[row, nugget - 1] = 1
    return topics


def test_alpha_ndcg_clarke_gain_and_dcg_vectors():
    topics = _clarke_topics()
    judged = topics[np.arange(10)][None].astype(float)  # ranking a..j
    gains = M._alpha_gains(judged, alpha=0.5)[0]
    # G = <2, 1/2, 1/4, 0, 2, 1/2, 1, 1/4, 0, 0>
    np.testing.assert_allclose(gains, [2, 0.5, 0.25, 0, 2, 0.5, 1, 0.25, 0, 0])
    # CG = <2, 2 1/2, 2 3/4, 2 3/4, 4 3/4, 5 1/4, 6 1/4, 6 1/2, ...>
    np.testing.assert_allclose(
        np.cumsum(gains)[:8], [2, 2.5, 2.75, 2.75, 4.75, 5.25, 6.25, 6.5]
    )
    # DCG = <2, 2.315, 2.440, ...> with discount log2(1 + k)
    dcg = np.cumsum(gains / np.log2(np.arange(2, 12)))
    np.testing.assert_allclose(np.round(dcg[:3], 3), [2.0, 2.315, 2.440])


def test_alpha_ndcg_clarke_greedy_ideal():
    topics = _clarke_topics().astype(bool)
    ideal_gains = M._greedy_ideal_gains(topics[None], alpha=0.5, k=10)[0]
    # ideal order a-e-g-b-f-c-h-..., G' = <2, 2, 1, 1/2, 1/2, 1/4, 1/4, 0, ...>
    np.testing.assert_allclose(ideal_gains, [2, 2, 1, 0.5, 0.5, 0.25, 0.25, 0, 0, 0])
    np.testing.assert_allclose(np.cumsum(ideal_gains)[:7], [2, 4, 5, 5.5, 6, 6.25, 6.5])
    ideal_dcg = np.cumsum(ideal_gains / np.log2(np.arange(2, 12)))
    # DCG' = <2, 3.262, 3.762, ...>
    np.testing.assert_allclose(np.round(ideal_dcg[:3], 3), [2.0, 3.262, 3.762])


def test_alpha_ndcg_clarke_ndcg_values():
    topics = _clarke_topics()
    ranking = np.arange(10)[None]  # a, b, ..., j
    # nDCG = <1, 0.710, 0.649, ...>
    values = [float(M.alpha_ndcg(ranking, topics, k)[0]) for k in range(1, 11)]
    np.testing.assert_allclose(np.round(values[:3], 3), [1.0, 0.710, 0.649])
    # deeper values follow from the gain vectors above
    gains = np.array([2, 0.5, 0.25, 0, 2, 0.5, 1, 0.25, 0, 0])
    ideal = np.array([2, 2, 1, 0.5, 0.5, 0.25, 0.25, 0, 0, 0])
    disc = np.log2(np.arange(2, 12))
    np.testing.assert_allclose(
        values, np.cumsum(gains / disc) / np.cumsum(ideal / disc)
    )
    # the ideal order itself scores 1 at every depth
    order = np.array([[CLARKE_DOCS.index(d) for d in "aegbfchijd"]])
    for k in range(1, 11):
        assert M.alpha_ndcg(order, topics, k)[0] == pytest.approx(1.0)


def test_alpha_ndcg_ideal_switch_and_user_topics():
    topics = _clarke_topics()
    # A list of only b, c (both nugget 2): the catalogue ideal is a, e;
    # the list-only ideal is the list itself.
    lists = np.array([[1, 2]])
    catalog = M.alpha_ndcg(lists, topics, 2, ideal="catalog")[0]
    expected = (1 + 0.5 / LOG2_3) / (2 + 2 / LOG2_3)
    assert catalog == pytest.approx(expected)
    assert M.alpha_ndcg(lists, topics, 2, ideal="list")[0] == pytest.approx(1.0)

    # Restricting the user to nugget 2: b then c gives gains 1, 1/2; the
    # catalogue ideal is a (1), b (1/2) -> the same DCG, so alpha-NDCG = 1.
    owned = np.zeros((1, 6), dtype=bool)
    owned[0, 1] = True
    assert M.alpha_ndcg(lists, topics, 2, user_topics=owned)[0] == pytest.approx(1.0)
    # a user without any covered topic scores 0
    none = np.zeros((1, 6), dtype=bool)
    none[0, 4] = True  # nugget 5: no document has it
    assert M.alpha_ndcg(lists, topics, 2, user_topics=none)[0] == 0.0


def test_alpha_ndcg_alpha_zero_is_graded_ndcg():
    # With alpha = 0 the gain is the number of covered topics (graded NDCG).
    topics = _clarke_topics()
    lists = np.array([[1, 0, 3]])  # gains 1, 2, 0
    ideal = 2 + 2 / LOG2_3 + 1 / LOG2_4  # a, e (2 each), then any 1-nugget doc
    expected = (1 + 2 / LOG2_3) / ideal
    assert M.alpha_ndcg(lists, topics, 3, alpha=0.0)[0] == pytest.approx(expected)


def test_alpha_ndcg_batches_do_not_change_results():
    rng = np.random.default_rng(0)
    topics = rng.random((30, 5)) < 0.3
    lists = np.stack([rng.permutation(30)[:6] for _ in range(11)])
    owned = rng.random((11, 5)) < 0.7
    full = M.alpha_ndcg(lists, topics, 6, user_topics=owned, batch_size=100)
    small = M.alpha_ndcg(lists, topics, 6, user_topics=owned, batch_size=3)
    np.testing.assert_allclose(full, small)
    assert np.all((full >= 0) & (full <= 1 + 1e-12))


def test_alpha_ndcg_rejects_bad_arguments():
    topics = _clarke_topics()
    with pytest.raises(ValueError, match="alpha"):
        M.alpha_ndcg(np.array([[0]]), topics, 1, alpha=1.5)
    with pytest.raises(ValueError, match="ideal"):
        M.alpha_ndcg(np.array([[0]]), topics, 1, ideal="best")
    with pytest.raises(ValueError, match="user_topics"):
        M.alpha_ndcg(np.array([[0]]), topics, 1, user_topics=np.ones((2, 6)))
