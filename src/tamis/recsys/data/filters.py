"""Filters applied before splitting: deduplication, k-core, minimum length.

Each filter returns a new, re-densified dataset and records how many rows it
removed in ``data.report``. A filter that leaves nothing raises a ``ValueError``
naming itself, so an over-eager setting is easy to spot.
"""

from __future__ import annotations

import logging

import numpy as np

from tamis.recsys.data.dataset import InteractionData

__all__ = ["deduplicate", "kcore", "min_length", "min_rating"]

log = logging.getLogger(__name__)


def _apply(data: InteractionData, keep: np.ndarray, what: str) -> InteractionData:
    removed = int(len(keep) - keep.sum())
    if not keep.any():
        raise ValueError(
            f"{data.name}: filter {what} removed every interaction "
            f"({len(keep)} rows); relax it"
        )
    out = data.subset(keep)
    out.report[f"filter.{what}.removed"] = removed
    if removed:
        log.info("%s: filter %s removed %d rows", data.name, what, removed)
    return out


def deduplicate(data: InteractionData, mode: str = "none") -> InteractionData:
    """Drop repeated interactions.

    Args:
        data: Rows in event order.
        mode: ``"none"``; ``"consecutive"`` drops an interaction equal to the
            user's previous one; ``"first"`` keeps only each (user, item)
            pair's first occurrence.
    """
    if mode == "none":
        return data
    if mode == "consecutive":
        same = np.zeros(data.n_interactions, dtype=bool)
        same[1:] = (data.user[1:] == data.user[:-1]) & (data.item[1:] == data.item[:-1])
        return _apply(data, ~same, "dedup")
    if mode == "first":
        pair = data.user * np.int64(data.n_items) + data.item
        _, first = np.unique(pair, return_index=True)
        keep = np.zeros(data.n_interactions, dtype=bool)
        keep[first] = True
        return _apply(data, keep, "dedup")
    raise ValueError(f"dedup: got {mode!r}, expected none, consecutive or first")


def min_rating(data: InteractionData, threshold: float | None) -> InteractionData:
    """Keep interactions with ``rating >= threshold`` (no-op for ``None``)."""
    if threshold is None:
        return data
    if data.rating is None:
        raise ValueError(f"{data.name}: min_rating set but the data has no ratings")
    return _apply(data, data.rating >= threshold, "min_rating")


def kcore(data: InteractionData, k: int) -> InteractionData:
    """Iteratively drop users and items with fewer than ``k`` interactions.

    Repeats until every remaining user and item has at least ``k`` rows (the
    usual "k-core" of the bipartite interaction graph, counting repeats).
    """
    if k <= 1:
        return data
    keep = np.ones(data.n_interactions, dtype=bool)
    while True:
        ucount = np.bincount(data.user[keep], minlength=data.n_users)
        icount = np.bincount(data.item[keep], minlength=data.n_items)
        ok = keep & (ucount[data.user] >= k) & (icount[data.item] >= k)
        if ok.sum() == keep.sum():
            break
        keep = ok
        if not keep.any():
            break
    return _apply(data, keep, f"kcore={k}")


def min_length(data: InteractionData, n: int) -> InteractionData:
    """Drop users with fewer than ``n`` interactions."""
    if n <= 1:
        return data
    count = np.bincount(data.user, minlength=data.n_users)
    return _apply(data, count[data.user] >= n, f"min_length={n}")
