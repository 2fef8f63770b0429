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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tamis.core.progress import progress
from tamis.recsys.data.splits import EvalSamples
from tamis.recsys.models.base import NeuralRecommender

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


def target_ranks(
    scores: torch.Tensor, target: torch.Tensor, work: torch.Tensor | None = None
) -> torch.Tensor:
    """1-based ranks of ``target`` under ``scores`` with id tie-breaking.

    The counts come from ``d = sign(scores - t)``, where ``t`` is the target's
    score: ``sum(d)`` is (higher - lower) and ``sum(|d|)`` is (higher +
    lower), which gives the number of higher and of equal items in two
    reductions over one buffer instead of two comparisons, two conversions and
    two sums. Both sums are exact in float32 for catalogues below 2**24
    items; rows whose sums are not finite (a NaN score) are counted by
    comparison, which treats NaN as neither higher nor equal.

    Args:
        scores: (B, N) item scores.
        target: (B,) item ids.
        work: Optional float32 buffer with at least B rows of N columns for
            the sign matrix (saves an allocation per call).

    Returns:
        (B,) int64 ranks.
    """
    n_items = scores.shape[1]
    t = scores.gather(1, target[:, None])  # (B, 1)
    if n_items < 2**24 and scores.dtype == torch.float32:
        out = None if work is None else work[: len(scores)]
        d = torch.sub(scores, t, out=out).sign_()  # (B, N) in {-1, 0, 1}
        diff = d.sum(dim=1)  # higher - lower
        nonzero = torch.linalg.vector_norm(d, 1, dim=1)  # higher + lower
        higher = ((diff + nonzero) / 2).long()
        equal = n_items - nonzero.long()  # includes the target
        bad = torch.nonzero(diff.isnan()).flatten()  # d is NaN only for NaN
        if len(bad):
            higher[bad] = (scores[bad] > t[bad]).sum(dim=1)
            equal[bad] = (scores[bad] == t[bad]).sum(dim=1)
    else:
        higher = (scores > t).sum(dim=1)
        equal = (scores == t).sum(dim=1)  # includes the target
    ties = torch.zeros_like(higher)
    tied = torch.nonzero(equal > 1).flatten()  # rare for learned scores
    if len(tied):
        ids = torch.arange(n_items, device=scores.device)[None, :]
        sub, tgt = scores[tied], target[tied, None]
        ties[tied] = ((sub == t[tied]) & (ids < tgt)).sum(dim=1)
    return higher + ties + 1


def _inner_product_scorer(
    model: Any, rows: int, device: str | torch.device
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor] | None:
    """A faster ``model.score`` for models that score by a plain inner product.

    The item table is transposed into a contiguous (D, n_items) matrix once
    per ranking and every batch's scores are written into one reused buffer,
    which saves a strided read of the table and a fresh (b, n_items)
    allocation per batch. Returns ``None`` for models with their own
    ``score``.
    """
    if type(model).score is not NeuralRecommender.score:
        return None
    items_t = model.item_embedding.detach().float().T.contiguous()  # (D, n_items)
    buffer = torch.empty(rows, items_t.shape[1], device=device)

    def score(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        query = model.query(batch).float()  # (b, D)
        return torch.mm(query, items_t, out=buffer[: len(query)])

    return score


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
    fast_score = _inner_product_scorer(model, rows, device)
    work = torch.empty(rows, n_items, device=device)  # sign buffer of target_ranks
    for idx in progress(batches, desc="ranking", total=len(batches)):
        width = int(widths[idx[0]])
        batch = {
            "user": users[idx].to(device),
            "seq": seqs[idx, seqs.shape[1] - width :].to(device),  # (b, width)
        }
        target = targets[idx].to(device)
        if fast_score is not None:
            scores = fast_score(batch)  # (b, n_items), our own buffer
        else:
            scores = model.score(batch).float()  # (b, n_items)

        # Remove history items from the candidates, keeping the target's score.
        if hist is not None:
            if fast_score is None:
                scores = scores.clone()  # masked in place below
            part = hist[idx.numpy()]
            row_ids = np.repeat(np.arange(len(idx)), np.diff(part.indptr))
            t_score = scores.gather(1, target[:, None])
            scores[torch.from_numpy(row_ids), torch.from_numpy(part.indices)] = float(
                "-inf"
            )
            scores.scatter_(1, target[:, None], t_score)

        ranks[idx] = target_ranks(scores, target, work).cpu()
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
