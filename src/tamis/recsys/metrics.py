"""Ranking and beyond-accuracy metrics for recommendation, one function each.

Conventions used throughout:

* ``N`` users (or evaluation samples), ``K`` slots in a top-K list,
  ``n_items`` items in the catalogue, ``T`` topics (categories).
* A top-K list is an integer array ``(N, K)`` of item ids, best first. Rows may
  be padded at the end with ``-1`` when fewer than ``K`` items were listed.
* Ranks are 1-based: rank 1 is the top of the list.
* Every per-sample metric returns an array of shape ``(N,)``; average it (or
  take a confidence interval) outside. Catalogue-level metrics (coverage, Gini,
  entropy) return a float.
* Inputs may be NumPy arrays, Python sequences or torch tensors. The
  single-target functions (:func:`hit_rate`, :func:`ndcg`, :func:`mrr`) return
  the type they were given, so a full-ranking evaluator can stay on its device;
  all others return NumPy ``float64`` arrays.

References:
    Jarvelin and Kekalainen, "Cumulated gain-based evaluation of IR
    techniques", TOIS 2002 (DCG). Clarke et al., "Novelty and diversity in
    information retrieval evaluation", SIGIR 2008 (alpha-NDCG). Zhou et al.,
    "Solving the apparent diversity-accuracy dilemma of recommender systems",
    PNAS 2010 (novelty as self-information). Ziegler et al., "Improving
    recommendation lists through topic diversification", WWW 2005 (intra-list
    diversity).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "alpha_ndcg",
    "category_coverage",
    "category_diversity",
    "gini_index",
    "hit_rate",
    "hit_rate_at_k",
    "hits_matrix",
    "intra_list_diversity",
    "item_coverage",
    "long_tail_items",
    "map_at_k",
    "mrr",
    "mrr_at_k",
    "ndcg",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "recall_at_k",
    "recommendation_counts",
    "shannon_entropy",
    "tail_share",
]

Relevant = Sequence[Collection[int]] | np.ndarray


# ---------------------------------------------------------------------------
# Input helpers
# ---------------------------------------------------------------------------


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a NumPy array (torch tensors are moved to the CPU)."""
    if _is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _topk_matrix(topk: Any, k: int) -> np.ndarray:
    """Validate a top-K list matrix and cut it to its first ``k`` columns."""
    lists = _numpy(topk)
    if lists.ndim != 2:
        raise ValueError(
            f"top-K lists must be a 2-D array (N, K) of item ids, got shape "
            f"{lists.shape}"
        )
    if lists.size and not np.issubdtype(lists.dtype, np.integer):
        raise ValueError(f"top-K lists must hold integer item ids, got {lists.dtype}")
    return lists[:, :k].astype(np.int64, copy=False)


def _check_item_ids(lists: np.ndarray, n_items: int, what: str) -> None:
    if lists.size and lists.max() >= n_items:
        raise ValueError(
            f"top-K lists contain item id {int(lists.max())} but {what} covers "
            f"only {n_items} items"
        )
    if lists.size and lists.min() < -1:
        raise ValueError(
            f"top-K lists contain item id {int(lists.min())}; only -1 is allowed "
            "as padding"
        )


def _discounts(length: int) -> np.ndarray:
    """DCG position discounts ``1 / log2(r + 1)`` for ranks ``r = 1..length``."""
    return 1.0 / np.log2(np.arange(2, length + 2, dtype=np.float64))


# ---------------------------------------------------------------------------
# Single-target accuracy (next-item prediction under full ranking)
# ---------------------------------------------------------------------------


def _ranks(ranks: Any) -> Any:
    if _is_torch(ranks):
        if ranks.numel() and bool((ranks < 1).any()):
            raise ValueError("ranks are 1-based; found a rank below 1")
        return ranks
    values = np.asarray(ranks, dtype=np.float64)
    if values.size and values.min() < 1:
        raise ValueError(f"ranks are 1-based; found rank {values.min()}")
    return values


def hit_rate(ranks: Any, k: int) -> Any:
    """Hit rate at K for one target per sample.

    ``HR@K = 1[rank <= K]``.

    Args:
        ranks: 1-based rank of the target item among all candidates, ``(N,)``.
        k: list length.

    Returns:
        ``(N,)`` floats in {0, 1}, same array type as ``ranks``.
    """
    k = _check_k(k)
    r = _ranks(ranks)
    return (r <= k).to(_float_dtype(r)) if _is_torch(r) else (r <= k).astype(float)


def ndcg(ranks: Any, k: int) -> Any:
    """Normalised discounted cumulative gain at K for one target per sample.

    With a single relevant item the ideal DCG is 1, so
    ``NDCG@K = 1[rank <= K] / log2(rank + 1)``.

    Args:
        ranks: 1-based rank of the target item, ``(N,)``.
        k: list length.

    Returns:
        ``(N,)`` floats in [0, 1], same array type as ``ranks``.
    """
    k = _check_k(k)
    r = _ranks(ranks)
    if _is_torch(r):
        rf = r.to(_float_dtype(r))
        return (rf <= k).to(rf.dtype) / (rf + 1).log2()
    return (r <= k) / np.log2(r + 1)


def mrr(ranks: Any, k: int) -> Any:
    """Reciprocal rank at K for one target per sample.

    ``MRR@K = 1[rank <= K] / rank``; its mean over samples is the mean
    reciprocal rank.

    Args:
        ranks: 1-based rank of the target item, ``(N,)``.
        k: list length.

    Returns:
        ``(N,)`` floats in [0, 1], same array type as ``ranks``.
    """
    k = _check_k(k)
    r = _ranks(ranks)
    if _is_torch(r):
        rf = r.to(_float_dtype(r))
        return (rf <= k).to(rf.dtype) / rf
    return (r <= k) / r


def _float_dtype(tensor: Any) -> Any:
    """The floating dtype to compute a torch metric in (float64 stays float64)."""
    import torch

    return tensor.dtype if tensor.is_floating_point() else torch.float32


# ---------------------------------------------------------------------------
# Multi-target accuracy (a set of relevant items per user)
# ---------------------------------------------------------------------------


def hits_matrix(topk: Any, relevant: Relevant, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mark which listed items are relevant.

    Args:
        topk: top-K lists ``(N, K')`` of item ids (``-1`` = padding).
        relevant: per user, the relevant item ids: a sequence of ``N``
            collections, or a boolean matrix ``(N, n_items)``.
        k: cut-off; the first ``k`` columns of ``topk`` are used.

    Returns:
        ``(hits, n_relevant)``: ``hits`` is a boolean ``(N, min(k, K'))``
        matrix, ``n_relevant`` the number of relevant items per user ``(N,)``.

    Raises:
        ValueError: when shapes disagree or a user has no relevant item.
    """
    k = _check_k(k)
    lists = _topk_matrix(topk, k)
    n = lists.shape[0]

    rel = relevant if isinstance(relevant, np.ndarray) else None
    if rel is None and _is_torch(relevant):
        rel = _numpy(relevant)
    if rel is not None and rel.ndim == 2:
        # Dense relevance matrix (N, n_items).
        rel = rel.astype(bool)
        if rel.shape[0] != n:
            raise ValueError(
                f"relevance matrix has {rel.shape[0]} rows but there are {n} lists"
            )
        _check_item_ids(lists, rel.shape[1], "the relevance matrix")
        safe = np.where(lists >= 0, lists, 0)
        hits = np.take_along_axis(rel, safe, axis=1) & (lists >= 0)
        n_relevant = rel.sum(axis=1)
    else:
        # One collection of relevant ids per user.
        if len(relevant) != n:
            raise ValueError(
                f"got {len(relevant)} relevant sets but there are {n} lists"
            )
        hits = np.zeros(lists.shape, dtype=bool)
        n_relevant = np.zeros(n, dtype=np.int64)
        for u, items in enumerate(relevant):
            wanted = (
                {int(i) for i in np.ravel(_numpy(items))}
                if _is_torch(items)
                else {int(i) for i in items}
            )
            n_relevant[u] = len(wanted)
            hits[u] = [int(i) in wanted for i in lists[u]]
        hits &= lists >= 0

    empty = np.flatnonzero(n_relevant == 0)
    if empty.size:
        raise ValueError(
            f"user row {int(empty[0])} has no relevant item ({empty.size} rows "
            "in total); drop such users before computing accuracy metrics"
        )
    return hits, n_relevant


def hit_rate_at_k(topk: Any, relevant: Relevant, k: int) -> np.ndarray:
    """Hit rate at K with several relevant items per user.

    ``HR@K(u) = 1[|L_K(u) ∩ R(u)| > 0]`` where ``L_K(u)`` is the top-K list
    and ``R(u)`` the relevant set.

    Args:
        topk: top-K lists ``(N, K')`` of item ids.
        relevant: relevant item ids per user (see :func:`hits_matrix`).
        k: cut-off.

    Returns:
        ``(N,)`` floats in {0, 1}.
    """
    hits, _ = hits_matrix(topk, relevant, k)
    return hits.any(axis=1).astype(np.float64)


def recall_at_k(topk: Any, relevant: Relevant, k: int) -> np.ndarray:
    """Recall at K: ``|L_K(u) ∩ R(u)| / |R(u)|``.

    Args:
        topk: top-K lists ``(N, K')`` of item ids.
        relevant: relevant item ids per user (see :func:`hits_matrix`).
        k: cut-off.

    Returns:
        ``(N,)`` floats in [0, 1].
    """
    hits, n_relevant = hits_matrix(topk, relevant, k)
    return hits.sum(axis=1) / n_relevant


def precision_at_k(topk: Any, relevant: Relevant, k: int) -> np.ndarray:
    """Precision at K: ``|L_K(u) ∩ R(u)| / K``.

    The denominator is ``K`` even when a list is shorter (padded), so a short
    list is not rewarded for listing less.

    Args:
        topk: top-K lists ``(N, K')`` of item ids.
        relevant: relevant item ids per user (see :func:`hits_matrix`).
        k: cut-off.

    Returns:
        ``(N,)`` floats in [0, 1].
    """
    hits, _ = hits_matrix(topk, relevant, k)
    return hits.sum(axis=1) / float(k)


def ndcg_at_k(topk: Any, relevant: Relevant, k: int) -> np.ndarray:
    """NDCG at K with binary relevance and several relevant items.

    ``DCG@K = sum_{r=1..K} rel_r / log2(r + 1)``, ``IDCG@K`` is the same sum for
    ``min(|R(u)|, K)`` relevant items at the top, ``NDCG@K = DCG@K / IDCG@K``.

    Args:
        topk: top-K lists ``(N, K')`` of item ids.
        relevant: relevant item ids per user (see :func:`hits_matrix`).
        k: cut-off.

    Returns:
        ``(N,)`` floats in [0, 1].
    """
    hits, n_relevant = hits_matrix(topk, relevant, k)
    disc = _discounts(k)
    dcg = hits @ disc[: hits.shape[1]]
    ideal = np.concatenate([[0.0], np.cumsum(disc)])  # ideal[m] = IDCG with m hits
    return dcg / ideal[np.minimum(n_relevant, k)]


def map_at_k(topk: Any, relevant: Relevant, k: int) -> np.ndarray:
    """Average precision at K (its mean over users is MAP@K).

    ``AP@K(u) = (1 / min(|R(u)|, K)) * sum_{r=1..K} P@r(u) * rel_r``, where
    ``P@r`` is the precision of the first ``r`` slots. The ``min`` makes a
    perfect list score 1 even when ``|R(u)| > K`` (the convention of RecBole
    and of most recommender toolkits).

    Args:
        topk: top-K lists ``(N, K')`` of item ids.
        relevant: relevant item ids per user (see :func:`hits_matrix`).
        k: cut-off.

    Returns:
        ``(N,)`` floats in [0, 1].
    """
    hits, n_relevant = hits_matrix(topk, relevant, k)
    positions = np.arange(1, hits.shape[1] + 1)
    precision_at_r = np.cumsum(hits, axis=1) / positions  # (N, K)
    return (precision_at_r * hits).sum(axis=1) / np.minimum(n_relevant, k)


def mrr_at_k(topk: Any, relevant: Relevant, k: int) -> np.ndarray:
    """Reciprocal rank of the first relevant item within the top K (0 if none).

    Args:
        topk: top-K lists ``(N, K')`` of item ids.
        relevant: relevant item ids per user (see :func:`hits_matrix`).
        k: cut-off.

    Returns:
        ``(N,)`` floats in [0, 1].
    """
    hits, _ = hits_matrix(topk, relevant, k)
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)


# ---------------------------------------------------------------------------
# Catalogue-level exposure: coverage, concentration, entropy, long tail
# ---------------------------------------------------------------------------


def recommendation_counts(topk: Any, n_items: int, k: int) -> np.ndarray:
    """How often each item appears in all top-K lists.

    Args:
        topk: top-K lists ``(N, K')`` of item ids (``-1`` = padding).
        n_items: catalogue size.
        k: cut-off.

    Returns:
        ``(n_items,)`` integer counts.
    """
    lists = _topk_matrix(topk, _check_k(k))
    _check_item_ids(lists, n_items, "the catalogue")
    listed = lists[lists >= 0]
    return np.bincount(listed, minlength=n_items)


def item_coverage(topk: Any, n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one top-K list.

    ``coverage = |union_u L_K(u)| / n_items``.

    Args:
        topk: top-K lists ``(N, K')`` of item ids.
        n_items: catalogue size.
        k: cut-off.

    Returns:
        A float in [0, 1].
    """
    counts = recommendation_counts(topk, n_items, k)
    return float((counts > 0).sum() / n_items)


def gini_index(topk: Any, n_items: int, k: int) -> float:
    """Gini index of how often items are recommended (0 = equal exposure).

    With the counts ``x_(1) <= ... <= x_(n)`` of all ``n`` catalogue items
    (unrecommended items count as 0),
    ``G = sum_i (2i - n - 1) x_(i) / (n * sum_i x_i)``.
    ``G = 0`` when every item is listed equally often and ``G = (n - 1) / n``
    when a single item takes every slot.

    Args:
        topk: top-K lists ``(N, K')`` of item ids.
        n_items: catalogue size.
        k: cut-off.

    Returns:
        A float in [0, 1).
    """
    counts = np.sort(recommendation_counts(topk, n_items, k)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        raise ValueError("the top-K lists are empty; the Gini index is undefined")
    index = np.arange(1, n_items + 1)
    return float(((2 * index - n_items - 1) * counts).sum() / (n_items * total))


def shannon_entropy(topk: Any, n_items: int, k: int, base: float = math.e) -> float:
    """Shannon entropy of the distribution of recommendation slots over items.

    ``H = -sum_i p_i log p_i`` with ``p_i = x_i / sum_j x_j`` (``x_i`` the
    number of lists containing item ``i``); items never listed contribute 0.
    The maximum is ``log(n_items)`` (uniform exposure).

    Args:
        topk: top-K lists ``(N, K')`` of item ids.
        n_items: catalogue size.
        k: cut-off.
        base: logarithm base (``e`` gives nats, 2 gives bits).

    Returns:
        A non-negative float.
    """
    counts = recommendation_counts(topk, n_items, k).astype(np.float64)
    if counts.sum() == 0:
        raise ValueError("the top-K lists are empty; the entropy is undefined")
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / math.log(base))


def long_tail_items(item_popularity: Any, quantile: float = 0.8) -> np.ndarray:
    """Mark the long-tail items of a catalogue.

    Items are sorted by popularity (descending; ties by ascending item id).
    The first ``ceil((1 - quantile) * n_items)`` of them form the short head;
    every other item is in the long tail. With the default 0.8 the head is the
    20% most popular items.

    Args:
        item_popularity: ``(n_items,)`` interaction counts (training data).
        quantile: share of the catalogue, by item count, that is long tail.

    Returns:
        ``(n_items,)`` boolean mask, True for long-tail items.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
    pop = _numpy(item_popularity).astype(np.float64)
    if pop.ndim != 1:
        raise ValueError(f"item_popularity must be 1-D, got shape {pop.shape}")
    n_head = math.ceil(round((1.0 - quantile) * pop.size, 9))
    order = np.lexsort((np.arange(pop.size), -pop))  # most popular first
    tail = np.ones(pop.size, dtype=bool)
    tail[order[:n_head]] = False
    return tail


def tail_share(topk: Any, tail_mask: Any, k: int) -> np.ndarray:
    """Share of each list's listed items that are long-tail items.

    Args:
        topk: top-K lists ``(N, K')`` of item ids (``-1`` = padding).
        tail_mask: ``(n_items,)`` boolean, e.g. from :func:`long_tail_items`.
        k: cut-off.

    Returns:
        ``(N,)`` floats in [0, 1] (an empty list scores 0).
    """
    lists = _topk_matrix(topk, _check_k(k))
    mask = _numpy(tail_mask).astype(bool)
    _check_item_ids(lists, mask.size, "tail_mask")
    valid = lists >= 0
    in_tail = mask[np.where(valid, lists, 0)] & valid
    n_listed = valid.sum(axis=1)
    return np.where(n_listed > 0, in_tail.sum(axis=1) / np.maximum(n_listed, 1), 0.0)


def novelty(
    topk: Any, item_popularity: Any, k: int, n_users: int | None = None
) -> np.ndarray:
    """Mean self-information of the listed items.

    ``novelty(u) = (1 / |L_K(u)|) * sum_{i in L_K(u)} -log2 p(i)``. With
    ``n_users`` given, ``p(i) = pop(i) / n_users`` (the share of users who
    interacted with ``i``, as in Zhou et al. 2010); otherwise
    ``p(i) = pop(i) / sum_j pop(j)``. Items with zero popularity are counted
    as seen once so that their self-information stays finite.

    Args:
        topk: top-K lists ``(N, K')`` of item ids (``-1`` = padding).
        item_popularity: ``(n_items,)`` training interaction counts.
        k: cut-off.
        n_users: number of users, or None to normalise by total interactions.

    Returns:
        ``(N,)`` non-negative floats (bits); an empty list scores 0.
    """
    lists = _topk_matrix(topk, _check_k(k))
    pop = np.maximum(_numpy(item_popularity).astype(np.float64), 1.0)
    _check_item_ids(lists, pop.size, "item_popularity")
    denominator = float(n_users) if n_users is not None else pop.sum()
    if n_users is not None and pop.max() > n_users:
        raise ValueError(
            f"an item has popularity {pop.max():g} > n_users={n_users}; pass "
            "per-item user counts or leave n_users unset"
        )
    info = -np.log2(pop / denominator)  # (n_items,)
    valid = lists >= 0
    listed = np.where(valid, info[np.where(valid, lists, 0)], 0.0)
    n_listed = valid.sum(axis=1)
    return np.where(n_listed > 0, listed.sum(axis=1) / np.maximum(n_listed, 1), 0.0)


# ---------------------------------------------------------------------------
# Intra-list diversity and topic coverage
# ---------------------------------------------------------------------------


def _pair_mean(distance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean of ``distance[u, a, b]`` over the pairs ``a < b`` of valid slots."""
    pair_ok = valid[:, :, None] & valid[:, None, :]
    upper = np.triu(np.ones(distance.shape[1:], dtype=bool), k=1)
    pair_ok &= upper
    n_pairs = pair_ok.sum(axis=(1, 2))
    total = np.where(pair_ok, distance, 0.0).sum(axis=(1, 2))
    return np.where(n_pairs > 0, total / np.maximum(n_pairs, 1), 0.0)


def intra_list_diversity(topk: Any, item_embeddings: Any, k: int) -> np.ndarray:
    """Intra-list average distance (ILAD) from item embeddings.

    ``ILD(u) = 2 / (K (K - 1)) * sum_{a < b} (1 - cos(e_a, e_b))`` over the
    listed items. Use fixed reference embeddings (for example those of the
    unperturbed base model), not ones the method under test controls.

    Args:
        topk: top-K lists ``(N, K')`` of item ids (``-1`` = padding).
        item_embeddings: ``(n_items, D)`` item vectors.
        k: cut-off.

    Returns:
        ``(N,)`` floats in [0, 2]; lists with fewer than two items score 0.

    Raises:
        ValueError: when a listed item has a zero embedding (cosine undefined).
    """
    lists = _topk_matrix(topk, _check_k(k))
    emb = _numpy(item_embeddings).astype(np.float64)
    if emb.ndim != 2:
        raise ValueError(f"item_embeddings must be (n_items, D), got {emb.shape}")
    _check_item_ids(lists, emb.shape[0], "item_embeddings")
    valid = lists >= 0

    norms = np.linalg.norm(emb, axis=1)
    listed_norms = norms[np.where(valid, lists, 0)]
    if np.any(valid & (listed_norms == 0)):
        raise ValueError("a listed item has a zero embedding; cosine is undefined")
    unit = emb / np.where(norms > 0, norms, 1.0)[:, None]
    vecs = unit[np.where(valid, lists, 0)]  # (N, K, D)
    cosine = vecs @ vecs.transpose(0, 2, 1)  # (N, K, K)
    return _pair_mean(1.0 - cosine, valid)


def _category_matrix(item_categories: Any) -> np.ndarray:
    cats = _numpy(item_categories)
    if cats.ndim != 2:
        raise ValueError(
            "item_categories must be a (n_items, n_categories) 0/1 matrix, got "
            f"shape {cats.shape}"
        )
    return cats.astype(bool)


def category_diversity(
    topk: Any,
    item_categories: Any,
    k: int,
    measure: Literal["jaccard", "differ"] = "jaccard",
) -> np.ndarray:
    """Intra-list diversity from item categories (topics).

    The mean over item pairs ``a < b`` of the list of a pairwise distance
    between their category sets ``C_a`` and ``C_b``:

    * ``"jaccard"``: ``1 - |C_a ∩ C_b| / |C_a ∪ C_b|`` (two items without
      any category have distance 0);
    * ``"differ"``: ``1[C_a != C_b]``, the share of pairs whose category sets
      are not identical (the topic variant of ILD used by CMB).

    Args:
        topk: top-K lists ``(N, K')`` of item ids (``-1`` = padding).
        item_categories: ``(n_items, n_categories)`` 0/1 incidence matrix.
        k: cut-off.
        measure: ``"jaccard"`` or ``"differ"``.

    Returns:
        ``(N,)`` floats in [0, 1]; lists with fewer than two items score 0.
    """
    if measure not in ("jaccard", "differ"):
        raise ValueError(f"measure must be 'jaccard' or 'differ', got {measure!r}")
    lists = _topk_matrix(topk, _check_k(k))
    cats = _category_matrix(item_categories)
    _check_item_ids(lists, cats.shape[0], "item_categories")
    valid = lists >= 0

    sets = cats[np.where(valid, lists, 0)].astype(np.float64)  # (N, K, C)
    inter = sets @ sets.transpose(0, 2, 1)  # (N, K, K)
    sizes = sets.sum(axis=2)  # (N, K)
    union = sizes[:, :, None] + sizes[:, None, :] - inter
    if measure == "jaccard":
        distance = np.where(union > 0, 1.0 - inter / np.maximum(union, 1), 0.0)
    else:
        distance = (union - inter > 0).astype(np.float64)
    return _pair_mean(distance, valid)


def category_coverage(topk: Any, item_categories: Any, k: int) -> np.ndarray:
    """Share of all categories present in each list.

    ``coverage(u) = |union_{i in L_K(u)} C_i| / n_categories``.

    Args:
        topk: top-K lists ``(N, K')`` of item ids (``-1`` = padding).
        item_categories: ``(n_items, n_categories)`` 0/1 incidence matrix.
        k: cut-off.

    Returns:
        ``(N,)`` floats in [0, 1].
    """
    lists = _topk_matrix(topk, _check_k(k))
    cats = _category_matrix(item_categories)
    _check_item_ids(lists, cats.shape[0], "item_categories")
    valid = lists >= 0
    sets = cats[np.where(valid, lists, 0)] & valid[:, :, None]  # (N, K, C)
    return sets.any(axis=1).sum(axis=1) / cats.shape[1]


# ---------------------------------------------------------------------------
# alpha-NDCG (Clarke et al. 2008)
# ---------------------------------------------------------------------------


def _alpha_gains(judged: np.ndarray, alpha: float) -> np.ndarray:
    """Novelty-discounted gains of ranked lists.

    Args:
        judged: ``(N, K, T)`` 0/1 judgements ``J(r_k, t)`` of the listed items,
            already restricted to each user's topics.
        alpha: redundancy penalty.

    Returns:
        ``(N, K)`` gains ``sum_t J(r_k, t) (1 - alpha)^{c_t(k)}``.
    """
    seen_before = np.cumsum(judged, axis=1) - judged  # (N, K, T): c_t(k)
    return (judged * (1.0 - alpha) ** seen_before).sum(axis=2)


def _greedy_ideal_gains(candidates: np.ndarray, alpha: float, k: int) -> np.ndarray:
    """Gains of the greedy ideal list (Clarke et al. 2008, Section 4).

    At each position the candidate with the largest novelty-discounted gain is
    taken (ties: the lowest candidate index), then the topic counts are
    updated. Finding the true optimum is NP-hard; the greedy list is the
    standard approximation.

    Args:
        candidates: ``(N, M, T)`` boolean topic judgements of each user's
            candidate items, already restricted to the user's topics.
        alpha: redundancy penalty.
        k: list length.

    Returns:
        ``(N, k)`` ideal gains (zero after the candidates run out).
    """
    n, m, t = candidates.shape
    judged = candidates.astype(np.float64)
    counts = np.zeros((n, t))
    available = np.ones((n, m), dtype=bool)
    gains = np.zeros((n, k))
    rows = np.arange(n)
    for pos in range(min(k, m)):
        weight = (1.0 - alpha) ** counts  # (N, T)
        gain = np.einsum("nmt,nt->nm", judged, weight)  # (N, M)
        gain = np.where(available, gain, -np.inf)
        best = gain.argmax(axis=1)  # first maximum = lowest index
        gains[:, pos] = gain[rows, best]
        counts += judged[rows, best]
        available[rows, best] = False
    return gains


def alpha_ndcg(
    topk: Any,
    item_topics: Any,
    k: int,
    alpha: float = 0.5,
    user_topics: Any | None = None,
    ideal: Literal["catalog", "list"] = "catalog",
    batch_size: int = 256,
) -> np.ndarray:
    """alpha-NDCG at K (Clarke et al., SIGIR 2008).

    An item ``r`` covers topic ``t`` when ``J(r, t) = 1``: the item has the
    topic and the topic belongs to the user (all topics when ``user_topics``
    is None). The gain at rank ``k`` is
    ``G[k] = sum_t J(r_k, t) (1 - alpha)^{c_t(k)}`` with ``c_t(k)`` the number
    of items above rank ``k`` that cover ``t``;
    ``alpha-DCG@K = sum_{k=1..K} G[k] / log2(1 + k)``.
    The normaliser is the alpha-DCG of an ideal list built greedily (at each
    position the item with the largest gain given the items already placed),
    the standard approximation because the exact ideal is NP-hard.

    Args:
        topk: top-K lists ``(N, K')`` of item ids (``-1`` = padding).
        item_topics: ``(n_items, T)`` 0/1 item-topic matrix.
        k: cut-off.
        alpha: redundancy penalty in [0, 1]; 0 gives plain topic-gain NDCG.
        user_topics: ``(N, T)`` 0/1 matrix of each user's topics, or None.
        ideal: where the ideal list draws its items from: ``"catalog"`` (all
            items, the standard definition) or ``"list"`` (a reordering of the
            user's own top-K list, which only measures order within the list).
        batch_size: users per batch for the catalogue-wide greedy search.

    Returns:
        ``(N,)`` floats in [0, 1]; users whose topics no candidate covers
        score 0.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if ideal not in ("catalog", "list"):
        raise ValueError(f"ideal must be 'catalog' or 'list', got {ideal!r}")
    lists = _topk_matrix(topk, _check_k(k))
    topics = _category_matrix(item_topics)
    _check_item_ids(lists, topics.shape[0], "item_topics")
    n, n_topics = lists.shape[0], topics.shape[1]
    if user_topics is None:
        owned = np.ones((n, n_topics), dtype=bool)
    else:
        owned = _numpy(user_topics).astype(bool)
        if owned.shape != (n, n_topics):
            raise ValueError(
                f"user_topics must have shape ({n}, {n_topics}), got {owned.shape}"
            )

    # Gains of the given lists.
    valid = lists >= 0
    listed = topics[np.where(valid, lists, 0)] & valid[:, :, None]  # (N, K, T)
    judged = listed & owned[:, None, :]
    disc = _discounts(k)
    dcg = _alpha_gains(judged.astype(np.float64), alpha) @ disc[: lists.shape[1]]

    # Gains of the greedy ideal lists, in user batches to bound memory.
    idcg = np.zeros(n)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        user_owned = owned[start:stop]
        if ideal == "catalog":
            cand = topics[None, :, :] & user_owned[:, None, :]  # (B, n_items, T)
        else:
            cand = judged[start:stop]  # (B, K, T)
        idcg[start:stop] = _greedy_ideal_gains(cand, alpha, k) @ disc
    return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0)
