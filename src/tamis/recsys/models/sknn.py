"""Session-based kNN (SKNN): score items by the sessions most similar to the query.

Jannach and Ludewig, "When Recurrent Neural Networks meet the Neighborhood for
Session-Based Recommendation", RecSys 2017 (doi:10.1145/3109859.3109872).
Training sessions are the users' training sequences; similarity is the cosine
of binary item sets, ``|q ∩ n| / sqrt(|q| |n|)``; an item's score is the sum
of the similarities of the ``k`` nearest sessions that contain it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tamis.core.config import param
from tamis.recsys.models.base import MODELS, Recommender

__all__ = ["SKNN", "SKNNConfig", "binary_rows"]


@dataclass
class SKNNConfig:
    """Hyperparameters of SKNN."""

    neighbours: int = param(100, "number k of nearest sessions", ge=1)
    exclude_own_session: bool = param(
        True, "never use the query user's own training session as a neighbour"
    )


def binary_rows(seq: torch.Tensor, n_items: int) -> torch.Tensor:
    """(B, n_items) float 0/1 matrix of the items in padded ``seq`` (B, L)."""
    rows = torch.zeros(seq.shape[0], n_items + 1, device=seq.device)
    rows.scatter_(1, seq, 1.0)
    return rows[:, 1:]


@MODELS.register("sknn", "Session kNN", paper="doi:10.1145/3109859.3109872")
class SKNN(Recommender):
    """Nearest-neighbour sessions over binary item sets (no training)."""

    Config = SKNNConfig
    trainable = False
    sequential = True

    def __init__(self, n_users: int, n_items: int, config: SKNNConfig) -> None:
        super().__init__(n_users, n_items, config)
        self.sessions: torch.Tensor | None = None  # sparse (n_sessions, n_items)
        self.session_norm: torch.Tensor | None = None  # (n_sessions,)

    def fit(self, split: Any, **_: Any) -> SKNN:
        """Index the training sequences as sessions (one per user)."""
        mat = split.train_matrix().tocsr()
        self.sessions = torch.sparse_csr_tensor(
            torch.from_numpy(mat.indptr.astype(np.int64)),
            torch.from_numpy(mat.indices.astype(np.int64)),
            torch.from_numpy(mat.data.astype(np.float32)),
            size=mat.shape,
            check_invariants=False,
        )
        self.session_norm = torch.from_numpy(
            np.sqrt(np.diff(mat.indptr)).astype(np.float32)
        )
        self._sessions_t = self.sessions.to_sparse_coo().t().coalesce().to_sparse_csr()
        return self

    prepare = fit

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_items) summed similarities of the ``k`` nearest sessions."""
        if self.sessions is None:
            raise RuntimeError("SKNN.fit(split) must be called before scoring")
        query = binary_rows(batch["seq"].cpu(), self.n_items)  # (B, n_items)
        overlap = (self.sessions @ query.T).T  # (B, n_sessions)
        qnorm = query.sum(dim=1, keepdim=True).sqrt()
        sim = overlap / (qnorm * self.session_norm[None, :]).clamp(min=1e-12)
        if self.config.exclude_own_session:
            sim[torch.arange(len(sim)), batch["user"].cpu()] = 0.0
        k = min(self.config.neighbours, sim.shape[1])
        top = torch.topk(sim, k, dim=1)
        weights = torch.zeros_like(sim).scatter_(1, top.indices, top.values)
        scores = (self._sessions_t @ weights.T).T  # (B, n_items)
        return scores.to(batch["seq"].device)
