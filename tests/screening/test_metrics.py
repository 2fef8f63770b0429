"""Screening metrics against RDKit's Scoring module and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rdkit.ML.Scoring import Scoring

from tamis.screening.metrics import (
    auroc,
    bedroc,
    enrichment_factor,
    mean_over_targets,
    rank_order,
    ranked_labels,
    screening_metrics,
)


def _rdkit_input(scores: np.ndarray, labels: np.ndarray, seed: int) -> list:
    order = rank_order(scores, seed)
    return [[float(scores[i]), int(labels[i])] for i in order]


@pytest.mark.parametrize("seed", range(6))
def test_equal_to_rdkit_on_random_scores_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1000, 3000))
    # Rounded scores create many ties.
    scores = np.round(rng.normal(size=n), 1)
    labels = (rng.random(n) < 0.05).astype(int)
    labels[0] = 1
    ranked = ranked_labels(scores, labels, seed)
    rd = _rdkit_input(scores, labels, seed)
    assert auroc(ranked) == pytest.approx(Scoring.CalcAUC(rd, 1), abs=1e-12)
    assert bedroc(ranked, 80.5) == pytest.approx(
        Scoring.CalcBEDROC(rd, 1, 80.5), abs=1e-12
    )
    fractions = [0.005, 0.01, 0.05]
    ours = [enrichment_factor(ranked, f) for f in fractions]
    assert ours == pytest.approx(Scoring.CalcEnrichment(rd, 1, fractions), abs=1e-12)


def test_perfect_ranking_and_worst_ranking() -> None:
    labels = np.r_[np.ones(10), np.zeros(990)]
    scores = -np.arange(1000.0)  # actives have the highest scores
    m = screening_metrics(scores, labels)
    assert m["auroc"] == 1.0
    assert m["bedroc"] == pytest.approx(1.0)
    assert m["ef1"] == pytest.approx(min(1 / 0.01, 1000 / 10))
    worst = screening_metrics(-scores, labels)
    assert worst["auroc"] == 0.0
    assert worst["bedroc"] == pytest.approx(0.0, abs=1e-9)


def test_enrichment_hand_computed() -> None:
    # 200 molecules, 4 actives; top 1% = ceil(2) = 2 molecules with 1 active.
    ranked = np.zeros(200, dtype=bool)
    ranked[[1, 5, 50, 120]] = True
    assert enrichment_factor(ranked, 0.01) == pytest.approx((1 / 2) / (4 / 200))
    assert enrichment_factor(ranked, 0.05) == pytest.approx((2 / 10) / (4 / 200))


def test_auroc_hand_computed() -> None:
    # order A D A D: decoy 1 has 1 active above, decoy 2 has 2 -> 3 / (2 * 2).
    assert auroc(np.array([1, 0, 1, 0], dtype=bool)) == pytest.approx(0.75)


def test_bedroc_closed_form_single_active_first() -> None:
    n, alpha = 100, 20.0
    ranked = np.zeros(n, dtype=bool)
    ranked[0] = True
    ra = 1 / n
    rie = math.exp(-alpha / n) / (
        (1 / n) * (1 - math.exp(-alpha)) / (math.exp(alpha / n) - 1)
    )
    rmax = (1 - math.exp(-alpha * ra)) / (ra * (1 - math.exp(-alpha)))
    rmin = (1 - math.exp(alpha * ra)) / (ra * (1 - math.exp(alpha)))
    assert bedroc(ranked, alpha) == pytest.approx((rie - rmin) / (rmax - rmin))


def test_ties_are_broken_by_seed_not_input_order() -> None:
    # All scores equal and actives listed first: an order-keeping sort would
    # give AUROC 1. A seeded shuffle gives about 0.5, and is reproducible.
    labels = np.r_[np.ones(50), np.zeros(950)]
    scores = np.zeros(1000)
    values = [auroc(ranked_labels(scores, labels, s)) for s in range(20)]
    assert abs(np.mean(values) - 0.5) < 0.05
    assert auroc(ranked_labels(scores, labels, 3)) == values[3]
    order = rank_order(np.array([0.1, 0.5, 0.5, 0.9]), seed=0)
    assert order[0] == 3 and order[-1] == 0


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        rank_order(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="fraction"):
        enrichment_factor(np.ones(3, dtype=bool), 0.0)
    with pytest.raises(ValueError, match="shape"):
        ranked_labels(np.zeros(3), np.zeros(4))


def test_mean_over_targets_is_macro() -> None:
    per = {
        "t1": {"auroc": 1.0, "ef1": 10.0, "n_total": 5},
        "t2": {"auroc": 0.5, "ef1": 0.0, "n_total": 500},
    }
    assert mean_over_targets(per) == {"auroc": 0.75, "ef1": 5.0}
