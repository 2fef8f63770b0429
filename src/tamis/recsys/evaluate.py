"""Full-ranking evaluation: every item is a candidate, in batches.

:func:`rank_targets` returns, for each evaluation sample, the 1-based rank of
its target among all items and the top-K list; :func:`evaluate` turns ranks
into metric means with :mod:`tamis.recsys.metrics`.

Conventions:

* Rank of the target = 1 + number of items scored strictly higher + number of
  items with an equal score and a smaller id. This is a total order, so a
  sample's rank never depends on the batch it was scored in.
* ``mask_history=True`` removes the items of the sample's (full) history from
  the candidates, except the target itself; ``False`` ranks against all items
  (RecBole's protocol for sequential models). The switch is recorded in
  ``results.json`` by the runner.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tamis.core.progress import progress
from tamis.recsys.data.splits import EvalSamples

__all__ = [
    "RankingResult",
    "rank_targets",
    "ranking_metrics",
    "evaluate",
    "target_ranks",
]

log = logging.getLogger(__name__)

#: Most score-matrix entries handled at once. A scoring batch is cut to
#: ``SCORE_BUDGET // n_items`` rows, so the (b, n_items) scores, their masked
#: copy and the comparison buffers of :func:`target_ranks` stay near 16 MiB
#: each whatever ``batch_size`` is (results do not depend on the cut).
SCORE_BUDGET = 2**22


@dataclass
class RankingResult:
    """Per-sample outcome of a full ranking.

    Attributes:
        users: (N,) dense user ids.
        targets: (N,) target item ids.
        ranks: (N,) 1-based rank of each target among all candidate items.
        topk: (N, K) recommended item ids, best first (history removed when
            masking is on).
        mask_history: Whether history items were removed from the candidates.
        seconds: Wall time of the ranking.
        cpu_seconds: CPU time of this process during the ranking.
    """

    users: np.ndarray
    targets: np.ndarray
    ranks: np.ndarray
    topk: np.ndarray
    mask_history: bool
    seconds: float
    cpu_seconds: float = 0.0


def target_ranks(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1-based ranks of ``target`` under ``scores`` with id tie-breaking.

    Args:
        scores: (B, N) item scores.
        target: (B,) item ids.

    Returns:
        (B,) int64 ranks.
    """
    t = scores.gather(1, target[:, None])  # (B, 1)
    # Counting through float sums is faster on CPU than summing bools, and
    # exact for catalogues below 2**24 items.
    exact = scores.shape[1] < 2**24
    dtype = torch.float32 if exact else torch.int64
    higher = (scores > t).to(dtype).sum(dim=1).long()
    equal = (scores == t).to(dtype).sum(dim=1).long()  # includes the target
    ties = torch.zeros_like(higher)
    tied = torch.nonzero(equal > 1).flatten()  # rare for learned scores
    if len(tied):
        ids = torch.arange(scores.shape[1], device=scores.device)[None, :]
        sub, tgt = scores[tied], target[tied, None]
        ties[tied] = ((sub == t[tied]) & (ids < tgt)).sum(dim=1)
    return higher + ties + 1


@torch.no_grad()
def rank_targets(
    model: Any,
    samples: EvalSamples,
    max_len: int = 50,
    batch_size: int = 1024,
    mask_history: bool = False,
    topk: int = 20,
    device: str | torch.device = "cpu",
) -> RankingResult:
    """Score all items for every sample and rank the targets.

    Args:
        model: A :class:`~tamis.recsys.models.base.Recommender`.
        samples: Validation or test samples of a split.
        max_len: Width of the padded history handed to the model.
        batch_size: Samples per scoring batch (results do not depend on it);
            capped at ``SCORE_BUDGET // n_items`` rows to bound memory.
        mask_history: Remove history items (other than the target) from the
            candidates.
        topk: Length of the returned lists (0 skips them).
        device: Where to score.

    Returns:
        A :class:`RankingResult`.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    was_training = model.training
    model.eval()
    n, n_items = len(samples), model.n_items
    seqs = torch.from_numpy(samples.padded(max_len))
    users = torch.from_numpy(samples.users)
    targets = torch.from_numpy(samples.targets)
    hist = samples.history_matrix(n_items) if mask_history else None
    ranks = torch.empty(n, dtype=torch.int64)
    k = min(topk, n_items)
    tops = torch.empty(n, k, dtype=torch.int64)

    # Batches group samples of similar history length so that all-padding
    # columns can be cut. A sample's width depends only on its own length (the
    # next power of two, capped at max_len), so its scores do not depend on
    # which other samples share its batch.
    lengths = (seqs > 0).sum(dim=1).clamp(min=1)
    widths = torch.minimum(
        2 ** torch.ceil(torch.log2(lengths.double())).long(),
        torch.tensor(seqs.shape[1]),
    )
    order = torch.argsort(widths, stable=True)
    rows = max(1, min(batch_size, SCORE_BUDGET // max(n_items, 1)))
    batches = [
        part
        for w in torch.unique(widths).tolist()
        for part in order[widths[order] == w].split(rows)
    ]
    for idx in progress(batches, desc="ranking", total=len(batches)):
        width = int(widths[idx[0]])
        batch = {
            "user": users[idx].to(device),
            "seq": seqs[idx, seqs.shape[1] - width :].to(device),  # (b, width)
        }
        target = targets[idx].to(device)
        scores = model.score(batch).float()  # (b, n_items)

        # Remove history items from the candidates, keeping the target's score.
        if hist is not None:
            scores = scores.clone()  # masked in place below
            part = hist[idx.numpy()]
            rows = np.repeat(np.arange(len(idx)), np.diff(part.indptr))
            t_score = scores.gather(1, target[:, None])
            scores[torch.from_numpy(rows), torch.from_numpy(part.indices)] = float(
                "-inf"
            )
            scores.scatter_(1, target[:, None], t_score)

        ranks[idx] = target_ranks(scores, target).cpu()
        if k > 0:
            tops[idx] = torch.topk(scores, k, dim=1).indices.cpu()
    model.train(was_training)
    return RankingResult(
        samples.users.copy(),
        samples.targets.copy(),
        ranks.numpy(),
        tops.numpy(),
        mask_history,
        time.perf_counter() - start,
        time.process_time() - cpu_start,
    )


def ranking_metrics(
    ranks: np.ndarray, ks: tuple[int, ...] | list[int] = (5, 10, 20)
) -> dict[str, float]:
    """Means of HR, NDCG and MRR at each cut-off from 1-based ranks.

    Returns:
        ``{"hr@10": ..., "ndcg@10": ..., "mrr@10": ..., ...}``.
    """
    from tamis.recsys import metrics

    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = float(np.mean(metrics.hit_rate(ranks, k)))
        out[f"ndcg@{k}"] = float(np.mean(metrics.ndcg(ranks, k)))
        out[f"mrr@{k}"] = float(np.mean(metrics.mrr(ranks, k)))
    return out


def evaluate(
    model: Any,
    samples: EvalSamples,
    ks: tuple[int, ...] | list[int] = (5, 10, 20),
    mask_history: bool = False,
    batch_size: int = 1024,
    max_len: int = 50,
    device: str | torch.device = "cpu",
    topk: int | None = None,
) -> tuple[dict[str, float], RankingResult]:
    """Full-ranking metrics of ``model`` on ``samples``.

    ``topk`` is the length of the returned top-K lists (default ``max(ks)``;
    0 skips them, which is what the trainer's validation does).

    Returns:
        ``(metrics, ranking)``: metric means (plus ``"samples"`` and
        ``"seconds"``) and the per-sample :class:`RankingResult`.
    """
    if len(samples) == 0:
        raise ValueError("evaluate: no samples to rank (empty validation/test set)")
    k = max(ks) if topk is None else topk
    result = rank_targets(model, samples, max_len, batch_size, mask_history, k, device)
    out = ranking_metrics(result.ranks, ks)
    out["samples"] = float(len(samples))
    out["seconds"] = result.seconds
    out["cpu_seconds"] = result.cpu_seconds
    return out, result
