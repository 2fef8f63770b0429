"""Full-ranking evaluation: ranks, ties, masking, batch-size invariance."""

from __future__ import annotations

import numpy as np
import torch

from tamis.recsys.data import EvalSamples, SequentialSplit
from tamis.recsys.evaluate import evaluate, rank_targets, ranking_metrics, target_ranks
from tamis.recsys.models import build_model


def test_target_ranks_break_ties_by_item_id() -> None:
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0]])
    assert target_ranks(scores, torch.tensor([2, 0])).tolist() == [3, 1]
    assert target_ranks(scores, torch.tensor([0, 3])).tolist() == [2, 4]


def test_ranking_metrics_by_hand() -> None:
    out = ranking_metrics(np.array([1, 2, 11]), ks=[10])
    assert out["hr@10"] == (1 + 1 + 0) / 3
    assert np.isclose(out["ndcg@10"], (1 + 1 / np.log2(3)) / 3)
    assert np.isclose(out["mrr@10"], (1 + 0.5) / 3)


class _FixedScores(torch.nn.Module):
    """A model whose scores are a fixed table row per user."""

    trainable, sequential = False, False

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table
        self.n_items = table.shape[1]

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.table[batch["user"]]


def test_history_mask_removes_seen_items_but_never_the_target() -> None:
    table = torch.tensor([[0.9, 0.8, 0.7, 0.1]])
    # History [0, 1, 3]; target 3 is also in the history (a repeat).
    samples = EvalSamples(
        np.array([0, 0]),
        np.array([2, 3]),
        np.array([0, 1, 0, 1, 3]),
        np.array([0, 2, 5]),
    )
    model = _FixedScores(table)
    plain = rank_targets(model, samples, max_len=4, mask_history=False, topk=2)
    masked = rank_targets(model, samples, max_len=4, mask_history=True, topk=2)
    assert plain.ranks.tolist() == [3, 4]
    assert masked.ranks.tolist() == [1, 2]
    assert masked.topk[0].tolist() == [2, 3]
    assert masked.topk[1][0] == 2 and 3 in masked.topk[1].tolist()


def test_results_do_not_depend_on_batch_size(planted_split: SequentialSplit) -> None:
    torch.manual_seed(0)
    model = build_model(
        "sasrec",
        planted_split.n_users,
        planted_split.n_items,
        {"hidden": 16, "inner": 32, "max_len": 8},
    )
    runs = [
        evaluate(model, planted_split.test, [5, 10], mask, bs, 8)
        for mask in (False, True)
        for bs in (3, 7, 1000)
    ]
    for group in (runs[:3], runs[3:]):
        ref = group[0][1]
        for metrics, res in group[1:]:
            assert np.array_equal(res.ranks, ref.ranks)
            assert np.array_equal(res.topk, ref.topk)
            assert metrics["ndcg@10"] == group[0][0]["ndcg@10"]
