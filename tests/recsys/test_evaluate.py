"""Full-ranking evaluation: ranks, ties, masking, batch-size invariance."""

from __future__ import annotations

import numpy as np
import torch

from tamis.recsys.data import EvalSamples, SequentialSplit
from tamis.recsys.evaluate import (
    _inner_product_scorer,
    evaluate,
    rank_targets,
    ranking_metrics,
    target_ranks,
)
from tamis.recsys.models import build_model


def test_target_ranks_break_ties_by_item_id() -> None:
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0]])
    assert target_ranks(scores, torch.tensor([2, 0])).tolist() == [3, 1]
    assert target_ranks(scores, torch.tensor([0, 3])).tolist() == [2, 4]


def _ranks_by_definition(scores: torch.Tensor, target: torch.Tensor) -> list[int]:
    """1 + #items scored higher + #items tied with a smaller id, NaN never counted."""
    out = []
    for row, tgt in zip(scores.tolist(), target.tolist(), strict=True):
        t = row[tgt]
        out.append(1 + sum(s > t or (s == t and j < tgt) for j, s in enumerate(row)))
    return out


def test_target_ranks_match_the_definition_with_ties_and_non_finite_scores() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (64, 9), generator=gen).float()  # many ties
    scores[3, 2] = float("-inf")
    scores[5, :] = float("-inf")
    scores[7, 4] = float("inf")
    scores[9, 1] = float("nan")
    scores[11, :] = float("nan")
    target = torch.randint(0, 9, (64,), generator=gen)
    target[3], target[9] = 2, 1  # a -inf target and a NaN target
    expected = _ranks_by_definition(scores, target)
    assert target_ranks(scores, target).tolist() == expected
    work = torch.full((80, 9), 7.0)  # larger than needed, stale contents
    assert target_ranks(scores, target, work).tolist() == expected


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


def test_inner_product_fast_path_ranks_like_the_model_scores(
    planted_split: SequentialSplit,
) -> None:
    torch.manual_seed(0)
    n_users = planted_split.n_users
    model = build_model("bpr", n_users, planted_split.n_items, {"hidden": 8})
    assert _inner_product_scorer(model, 4, "cpu") is not None  # the fast path runs
    with torch.no_grad():
        table = _FixedScores(model.score({"user": torch.arange(n_users)}))
    assert _inner_product_scorer(table, 4, "cpu") is None
    for masked in (False, True):
        fast = rank_targets(model, planted_split.valid, mask_history=masked)
        plain = rank_targets(table, planted_split.valid, mask_history=masked)
        assert np.array_equal(fast.ranks, plain.ranks)
        assert np.array_equal(fast.topk, plain.topk)
