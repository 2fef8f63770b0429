"""The whole study on generated data: invariants, alignment checks, report."""

from __future__ import annotations

import numpy as np
import pytest

from tamis.recsys.analysis import (
    CollabData,
    ModelPredictions,
    StudySettings,
    planted_cluster_sequences,
    run_study,
)
from tamis.recsys.analysis.report import write_report


@pytest.fixture(scope="module")
def data() -> CollabData:
    seqs = planted_cluster_sequences(120, 3, 200, 4, 9, 0.05, 0.5, seed=3)
    return CollabData.leave_last_out(seqs, 120, "clusters")


def _oracle(data: CollabData) -> ModelPredictions:
    """Ranks every target first; the rest of the list is the next item ids."""
    n = len(data.test_targets)
    topk = (data.test_targets[:, None] + np.arange(20)[None, :]) % data.n_items
    return ModelPredictions("oracle", np.ones(n, dtype=int), topk)


def _popular(data: CollabData) -> ModelPredictions:
    counts = np.bincount(np.concatenate(data.train), minlength=data.n_items)
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(data.n_items, dtype=int)
    rank[order] = np.arange(1, data.n_items + 1)
    topk = np.tile(order[:20], (len(data.test_targets), 1))
    return ModelPredictions("pop", rank[data.test_targets], topk)


def test_study_invariants(data, tmp_path):
    settings = StudySettings(max_hops=4, redundancy_sources=20)
    result = run_study(data, settings, [_oracle(data), _popular(data)])
    hist = result["pair_histogram"]
    assert hist["exact"]
    assert sum(hist["pairs"].values()) + hist["beyond"] == hist["total"]
    typing = result["test_typing"]
    assert sum(typing["counts"].values()) == len(data.test_targets)
    assert typing["direct"] == typing["counts"]["0-hop"]
    # Multiplicity counts every edge once.
    assert result["multiplicity"]["pairs"] == result["dataset"]["n_edges"]
    assert hist["pairs"]["1"] == result["dataset"]["n_edges"]
    # Direct pairs have exactly one shortest path.
    assert result["redundancy"]["d=1"]["max_paths"] == 1.0

    oracle = result["models"]["oracle"]["accuracy"]
    assert all(row["HR@10"] == 1.0 and row["NDCG@20"] == 1.0 for row in oracle.values())
    for model in result["models"].values():
        for view in ("pairs", "items"):
            assert sum(model["shares"][view].values()) == pytest.approx(1.0)
        sizes = {k: v["n"] for k, v in model["accuracy"].items()}
        assert sizes["all"] == len(data.test_targets)
        assert sizes.get("direct", 0) + sizes.get("no-direct", 0) <= sizes["all"]

    path = write_report([result], tmp_path / "report.html")
    text = path.read_text()
    assert "clusters" in text and "<img" in text and "oracle" in text


def test_sampled_study_matches_exact_on_typing(data):
    exact = run_study(data, StudySettings(max_hops=4, redundancy_sources=0))
    sampled = run_study(
        data, StudySettings(max_hops=4, pair_sources=30, redundancy_sources=0)
    )
    assert not sampled["pair_histogram"]["exact"]
    # Test typing never depends on the histogram's sources.
    assert sampled["test_typing"] == exact["test_typing"]
    total = sampled["pair_histogram"]["total"]
    estimate = sum(sampled["pair_histogram"]["pairs"].values())
    assert estimate + sampled["pair_histogram"]["beyond"] == pytest.approx(total)


def test_subsampled_test_samples(data):
    result = run_study(
        data, StudySettings(max_hops=3, max_samples=25, redundancy_sources=0)
    )
    assert result["test_typing"]["n_samples"] == 25


def test_window_graph_is_sparser(data):
    clique = run_study(data, StudySettings(max_hops=3, redundancy_sources=0))
    window = run_study(data, StudySettings(max_hops=3, window=1, redundancy_sources=0))
    assert window["dataset"]["n_edges"] < clique["dataset"]["n_edges"]
    share = "share_0hop"
    assert window["test_typing"][share] <= clique["test_typing"][share]


def test_misaligned_predictions_are_rejected(data):
    bad = ModelPredictions("bad", np.ones(3, dtype=int), np.zeros((3, 10), int))
    with pytest.raises(ValueError, match="bad"):
        run_study(data, StudySettings(), [bad])
