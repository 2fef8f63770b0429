"""Model breakdowns by collaborative-relation type.

Two views of a recommender's test predictions:

- *relation shares*: for the top-K list R of a sample with input S, the share of
  (r, x) pairs, r in R and x in distinct(S), per relation code; and the share of
  list items whose closest input item has each code;
- *stratified accuracy*: HR@K, NDCG@K and MRR@K averaged over each subset of
  samples (all, each relation type, direct, no-direct, pure types), always with
  the subset size next to it.

Reference: X. Zhang et al., arXiv:2511.06905, Section 5 (model analysis).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tamis.recsys import metrics
from tamis.recsys.analysis.relations import distance_codes

__all__ = ["relation_shares", "stratified_accuracy"]


def relation_shares(
    sample: np.ndarray,
    rec_item: np.ndarray,
    dist: np.ndarray,
    known: np.ndarray,
    labels: Sequence[str],
    max_hops: int,
    list_slot: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Share of relation types between top-K items and input items.

    Args:
        sample: (P,) sample index of each (input item, listed item) pair.
        rec_item: (P,) the listed item of each pair.
        dist: (P,) capped distance of each pair.
        known: (n_items,) bool, items that occur in training; pairs with an
            unknown listed item are coded ``cold``.
        labels: Relation labels (see :func:`relation_labels`).
        max_hops: Hop cap H.
        list_slot: (P,) flat index of the (sample, slot) the pair belongs to,
            used for the per-item view; ``None`` skips it.

    Returns:
        ``{"pairs": {label: share}, "items": {label: share}}``; each view sums
        to 1 over labels (``items`` is empty without ``list_slot``).
    """
    codes = distance_codes(dist, max_hops)
    codes[~known[rec_item]] = max_hops + 2
    n_codes = len(labels)
    pair_tally = np.bincount(codes, minlength=n_codes).astype(float)
    out = {"pairs": _shares(pair_tally, labels), "items": {}}
    if list_slot is not None and codes.size:
        # Per listed item: its closest relation to any input item.
        slots, inverse = np.unique(list_slot, return_inverse=True)
        best = np.full(slots.size, n_codes - 1, dtype=np.int16)
        np.minimum.at(best, inverse, codes)
        out["items"] = _shares(np.bincount(best, minlength=n_codes), labels)
    return out


def _shares(tally: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    total = float(tally.sum())
    return {
        label: (float(c) / total if total else 0.0)
        for label, c in zip(labels, tally, strict=True)
    }


def stratified_accuracy(
    ranks: np.ndarray, subsets: Mapping[str, np.ndarray], ks: Sequence[int]
) -> dict[str, dict[str, float]]:
    """Mean HR@K, NDCG@K and MRR@K over each subset of test samples.

    Args:
        ranks: (N,) 1-based full-ranking rank of each sample's target.
        subsets: Name -> (N,) boolean mask.
        ks: Cut-offs K.

    Returns:
        ``{subset: {"n": size, "HR@K": ..., "NDCG@K": ..., "MRR@K": ...}}``
        for every non-empty subset.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    per_sample = {}
    for k in ks:
        per_sample[f"HR@{k}"] = metrics.hit_rate(ranks, k)
        per_sample[f"NDCG@{k}"] = metrics.ndcg(ranks, k)
        per_sample[f"MRR@{k}"] = metrics.mrr(ranks, k)
    table: dict[str, dict[str, float]] = {}
    for name, mask in subsets.items():
        if not mask.any():
            continue
        row: dict[str, float] = {"n": int(mask.sum())}
        for metric, values in per_sample.items():
            row[metric] = float(values[mask].mean())
        table[name] = row
    return table
