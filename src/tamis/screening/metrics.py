"""Virtual-screening metrics: AUROC, BEDROC, enrichment factors, per-target means.

All metrics read a *ranked* label vector (best score first). Ranking breaks ties
between equal scores with a seeded random permutation, never by input order:
DUD-E files list actives first, so an order-preserving sort would leak labels.
The formulas follow RDKit's ``rdkit.ML.Scoring.Scoring`` (the tests check
equality on random data); BEDROC is Truchon and Bayly, J. Chem. Inf. Model. 47,
488 (2007).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "rank_order",
    "ranked_labels",
    "auroc",
    "bedroc",
    "enrichment_factor",
    "screening_metrics",
    "mean_over_targets",
    "EF_FRACTIONS",
]

#: Fractions of the ranked list at which enrichment factors are reported.
EF_FRACTIONS = (0.005, 0.01, 0.05)


def rank_order(scores: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices that sort ``scores`` in descending order, ties broken by ``seed``.

    Args:
        scores: (N,) scores, higher is better.
        seed: Seed of the random permutation that orders equal scores.

    Returns:
        (N,) int64 permutation; ``scores[order]`` is non-increasing.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores: expected a 1-D array, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores: NaN found; every molecule needs a finite score")
    perm = np.random.default_rng(seed).permutation(len(scores))
    # A stable sort of the permuted scores keeps the random order among ties.
    order = np.argsort(-scores[perm], kind="stable")
    return perm[order]


def ranked_labels(scores: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Binary labels in ranked order (best score first), ties broken by ``seed``."""
    labels = np.asarray(labels).astype(bool)
    if labels.shape != np.shape(scores):
        raise ValueError(
            f"labels: shape {labels.shape} does not match scores {np.shape(scores)}"
        )
    return labels[rank_order(scores, seed)]


def auroc(ranked: np.ndarray) -> float:
    """Area under the ROC curve of a ranked label vector (trapezoid rule).

    Args:
        ranked: (N,) booleans, best-ranked first.

    Returns:
        AUROC in [0, 1]; 0.0 when one class is missing (as RDKit).
    """
    ranked = np.asarray(ranked, dtype=bool)
    n_act = int(ranked.sum())
    n_dec = len(ranked) - n_act
    if n_act == 0 or n_dec == 0:
        return 0.0
    # Each decoy contributes the fraction of actives ranked above it.
    actives_above = np.cumsum(ranked)[~ranked]
    return float(actives_above.sum() / (n_act * n_dec))


def bedroc(ranked: np.ndarray, alpha: float = 80.5) -> float:
    """Boltzmann-enhanced discrimination of ROC (early recognition).

    Args:
        ranked: (N,) booleans, best-ranked first.
        alpha: Early-recognition weight; 80.5 puts 80% of the weight on the top 2%.

    Returns:
        BEDROC in [0, 1]; 0.0 without actives, 1.0 when every molecule is active.
    """
    ranked = np.asarray(ranked, dtype=bool)
    n = len(ranked)
    if n == 0:
        raise ValueError("ranked: empty list")
    if alpha <= 0:
        raise ValueError(f"alpha: got {alpha}, expected > 0")
    n_act = int(ranked.sum())
    if n_act == 0:
        return 0.0
    ranks = np.flatnonzero(ranked) + 1.0  # 1-based ranks of actives
    denom = (1.0 / n) * ((1 - math.exp(-alpha)) / (math.exp(alpha / n) - 1))
    rie = float(np.exp(-alpha * ranks / n).sum()) / (n_act * denom)
    ratio = n_act / n
    rie_max = (1 - math.exp(-alpha * ratio)) / (ratio * (1 - math.exp(-alpha)))
    rie_min = (1 - math.exp(alpha * ratio)) / (ratio * (1 - math.exp(alpha)))
    if rie_max == rie_min:
        return 1.0
    return (rie - rie_min) / (rie_max - rie_min)


def enrichment_factor(ranked: np.ndarray, fraction: float) -> float:
    """Enrichment factor at ``fraction`` of the ranked list.

    ``EF_f = (actives in the first ceil(N f) / ceil(N f)) / (n / N)``, with at
    least one molecule selected. Its ceiling is ``min(1 / f, N / n)``.

    Args:
        ranked: (N,) booleans, best-ranked first.
        fraction: Fraction in (0, 1].

    Returns:
        The enrichment factor; 0.0 without actives.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: got {fraction}, expected a value in (0, 1]")
    ranked = np.asarray(ranked, dtype=bool)
    n = len(ranked)
    n_act = int(ranked.sum())
    if n == 0:
        raise ValueError("ranked: empty list")
    if n_act == 0:
        return 0.0
    top = max(1, math.ceil(n * fraction))
    return float(ranked[:top].sum()) * n / (top * n_act)


def screening_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    alpha: float = 80.5,
    fractions: Sequence[float] = EF_FRACTIONS,
) -> dict[str, float]:
    """AUROC, BEDROC and EF of one target's scored library.

    Args:
        scores: (N,) scores, higher means more likely active.
        labels: (N,) 1 for actives, 0 for decoys.
        seed: Tie-breaking seed.
        alpha: BEDROC alpha.
        fractions: EF fractions.

    Returns:
        ``{"auroc", "bedroc", "ef0.5", "ef1", "ef5", "n_actives", "n_total"}``.
    """
    ranked = ranked_labels(scores, labels, seed)
    out = {"auroc": auroc(ranked), "bedroc": bedroc(ranked, alpha)}
    for f in fractions:
        out[f"ef{f * 100:g}"] = enrichment_factor(ranked, f)
    out["n_actives"] = int(ranked.sum())
    out["n_total"] = len(ranked)
    return out


def mean_over_targets(
    per_target: Mapping[str, Mapping[str, float]],
) -> dict[str, float]:
    """Macro mean of each metric over targets (each target weighs the same)."""
    if not per_target:
        return {}
    keys = [k for k in next(iter(per_target.values())) if not k.startswith("n_")]
    return {k: float(np.mean([m[k] for m in per_target.values()])) for k in keys}
