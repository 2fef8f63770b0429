"""Semantic retrieval: same-group exclusion, exact vs FAISS, padding."""

from __future__ import annotations

import numpy as np
import pytest

from tamis.recsys.semantic.retrieval import (
    exact_topk,
    faiss_topk,
    random_neighbours,
    topk_neighbours,
)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_topk_known_answer_and_self_exclusion():
    # Four points on a circle: each one's nearest other point is known.
    angles = np.array([0.0, 0.1, 1.5, 1.6])
    x = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    ids = np.arange(4)
    index, score = exact_topk(x, x, 1, ids, ids)
    assert index[:, 0].tolist() == [1, 0, 3, 2]
    np.testing.assert_allclose(score[:, 0], np.cos(0.1), rtol=1e-5)


def test_same_user_prefixes_are_never_retrieved():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(6), 5)  # 6 users x 5 prefixes
    # A user's prefixes are near-duplicates: without the filter they would
    # be each other's nearest neighbours.
    centres = rng.normal(size=(6, 8))
    x = _unit(centres[users] + 0.01 * rng.normal(size=(30, 8))).astype(np.float32)
    for method in ("exact", "faiss"):
        index, _ = topk_neighbours(x, x, 4, users, users, method=method)
        assert (index >= 0).all()
        assert not (users[index] == users[:, None]).any(), method
    # Without the filter (groups = the prefix itself) they are.
    own = np.arange(30)
    index, _ = topk_neighbours(x, x, 4, own, own, method="exact")
    assert (users[index] == users[:, None]).all()


def test_faiss_matches_exact_on_random_data():
    rng = np.random.default_rng(1)
    x = _unit(rng.normal(size=(200, 16))).astype(np.float32)
    groups = rng.integers(0, 40, size=200)
    ie, se = exact_topk(x, x, 10, groups, groups)
    i_f, s_f = faiss_topk(x, x, 10, groups, groups)
    np.testing.assert_allclose(se, s_f, atol=1e-5)
    assert (ie == i_f).mean() > 0.99  # ties may swap


def test_rows_short_of_candidates_are_padded():
    x = _unit(np.eye(3, dtype=np.float32))
    groups = np.array([0, 0, 1])
    index, score = exact_topk(x, x, 2, groups, groups)
    # Items 0 and 1 share a group: each has exactly one admissible key.
    assert index[0].tolist() == [2, -1] and index[2].tolist()[1] in (0, 1)
    assert np.isinf(score[0, 1])
    index_f, _ = faiss_topk(x, x, 2, groups, groups)
    assert index_f[0].tolist() == [2, -1]


def test_random_neighbours_are_from_other_groups():
    groups = np.repeat(np.arange(5), 4)
    nb = random_neighbours(groups, groups, 6, seed=3)
    assert nb.shape == (20, 6)
    assert not (groups[nb] == groups[:, None]).any()


def test_topk_validates_arguments():
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="auto\\|exact\\|faiss"):
        topk_neighbours(x, x, 1, np.arange(3), np.arange(3), method="annoy")
    with pytest.raises(ValueError, match="one group per query"):
        topk_neighbours(x, x, 1, np.arange(2), np.arange(3))
