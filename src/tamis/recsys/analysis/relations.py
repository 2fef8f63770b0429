"""Collaborative-relation (CR) types of item pairs and of test samples.

A pair at shortest-path distance d has hop type h = d - 1: d = 1 is a 0-hop
relation (direct co-occurrence), d = 2 a 1-hop relation, and so on. Relation
codes index :func:`relation_labels`:

- code 0, ``repeat``: the same item (a target already in the input sequence);
- code d for 1 <= d <= H: the (d - 1)-hop relation;
- code H + 1: farther than the cap H, or unconnected;
- code H + 2, ``cold``: an item that never occurs in the training sequences.

A test sample (S, y) takes the smallest code over its distinct input items x,
i.e. d*(S, y) = min_x d(x, y) (a repeat wins, then the closest relation). A
sample is *pure* when every distinct input item has the same code to y.

Reference: X. Zhang et al., arXiv:2511.06905, Sections 3-4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from tamis.recsys.analysis.bfs import UNREACHED

__all__ = [
    "relation_labels",
    "distance_codes",
    "flatten_input_pairs",
    "SampleTypes",
    "type_samples",
]


def relation_labels(max_hops: int) -> list[str]:
    """Labels of the relation codes 0 .. H + 2 for hop cap H.

    Example:
        >>> relation_labels(3)
        ['repeat', '0-hop', '1-hop', '2-hop', '>2-hop/none', 'cold']
    """
    hops = [f"{d - 1}-hop" for d in range(1, max_hops + 1)]
    return ["repeat", *hops, f">{max_hops - 1}-hop/none", "cold"]


def distance_codes(dist: ArrayLike, max_hops: int) -> np.ndarray:
    """Map capped distances (``UNREACHED`` beyond the cap) to relation codes.

    Args:
        dist: (P,) distances from :mod:`tamis.recsys.analysis.bfs`.
        max_hops: Hop cap H used to compute them.

    Returns:
        (P,) int16 codes in 0 .. H + 1.
    """
    codes = np.asarray(dist, dtype=np.int16).copy()
    codes[codes == UNREACHED] = max_hops + 1
    return codes


def flatten_input_pairs(
    inputs: Sequence[ArrayLike], partners: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (x, partner) for every distinct input item x of every sample.

    Args:
        inputs: N input sequences.
        partners: (N,) one item per sample (the target), or (N, K) items per
            sample (a top-K list), in which case each of the K items is paired
            with every distinct input item.

    Returns:
        ``(sample, x, partner, slot)``, four (P,) int64 arrays grouped by sample
        in increasing order; ``slot`` is the flat index ``sample * K + j`` of
        the partner's position j.
    """
    partners = np.asarray(partners, dtype=np.int64)
    per = partners.reshape(partners.shape[0], -1)  # (N, K), K = 1 for targets
    uniq = [np.unique(np.asarray(s, dtype=np.int64)) for s in inputs]
    sizes = np.array([u.size for u in uniq], dtype=np.int64)
    k = per.shape[1]
    sample = np.repeat(np.arange(len(uniq)), sizes * k)
    x = np.concatenate([np.tile(u, k) for u in uniq]) if uniq else np.empty(0, int)
    slot = np.repeat(np.arange(per.size), np.repeat(sizes, k))
    return sample, x.astype(np.int64), per.ravel()[slot], slot


@dataclass
class SampleTypes:
    """Relation type of every test sample.

    Attributes:
        code: (N,) int16 relation code of the sample (see module docstring).
        pure: (N,) bool, every distinct input item has the same code to y.
        labels: Label of each code.
    """

    code: np.ndarray
    pure: np.ndarray
    labels: list[str]

    def counts(self) -> dict[str, int]:
        """Samples per relation type."""
        tally = np.bincount(self.code, minlength=len(self.labels))
        return {label: int(c) for label, c in zip(self.labels, tally, strict=True)}

    def subsets(self) -> dict[str, np.ndarray]:
        """Boolean masks (N,) of the named subsets used in breakdowns.

        ``all``; one per relation type; ``direct`` (0-hop); ``no-direct``
        (1-hop and farther, unconnected included; repeats and cold excluded);
        ``pure <type>`` for every non-empty pure type.
        """
        h_plus_1 = len(self.labels) - 2
        masks = {"all": np.ones(self.code.size, dtype=bool)}
        for code, label in enumerate(self.labels):
            masks[label] = self.code == code
        masks["direct"] = self.code == 1
        masks["no-direct"] = (self.code >= 2) & (self.code <= h_plus_1)
        for code, label in enumerate(self.labels[: h_plus_1 + 1]):
            pure = self.pure & (self.code == code)
            if pure.any():
                masks[f"pure {label}"] = pure
        return masks


def type_samples(
    n_samples: int,
    sample: np.ndarray,
    dist: np.ndarray,
    targets: ArrayLike,
    known: np.ndarray,
    max_hops: int,
) -> SampleTypes:
    """Relation type of each test sample from its (input item, target) distances.

    Args:
        n_samples: N.
        sample: (P,) sample index of each pair, grouped in increasing order, as
            returned by :func:`flatten_input_pairs`.
        dist: (P,) capped distance of each pair.
        targets: (N,) target items.
        known: (n_items,) bool, items that occur in training; other targets are
            typed ``cold``.
        max_hops: Hop cap H.

    Returns:
        A :class:`SampleTypes`.
    """
    codes = distance_codes(dist, max_hops)
    best = np.full(n_samples, max_hops + 1, dtype=np.int16)
    worst = np.full(n_samples, max_hops + 1, dtype=np.int16)
    if sample.size:
        np.minimum.at(best, sample, codes)
        worst[:] = -1
        np.maximum.at(worst, sample, codes)
        empty = np.bincount(sample, minlength=n_samples) == 0
        worst[empty] = max_hops + 1
    cold = ~known[np.asarray(targets, dtype=np.int64)]
    best[cold] = max_hops + 2
    return SampleTypes(best, best == worst, relation_labels(max_hops))
