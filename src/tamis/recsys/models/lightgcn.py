"""LightGCN: simplified graph convolution for collaborative filtering.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020, arXiv:2002.02126. Embeddings are propagated over
the symmetrically normalised user-item graph of the training interactions,
``E^{(k+1)} = D^{-1/2} A D^{-1/2} E^{(k)}``, and the layer outputs averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from tamis.core.config import param
from tamis.recsys.models.base import MODELS, NeuralRecommender

__all__ = ["LightGCN", "LightGCNConfig", "normalized_adjacency", "propagate"]


@dataclass
class LightGCNConfig:
    """Hyperparameters of LightGCN."""

    hidden: int = param(64, "embedding dimension D", ge=1)
    layers: int = param(2, "propagation layers K", ge=0)


def normalized_adjacency(train: sp.csr_matrix) -> torch.Tensor:
    """``D^{-1/2} A D^{-1/2}`` of the bipartite graph, as a sparse CSR tensor.

    Args:
        train: (n_users, n_items) binary interaction matrix.

    Returns:
        (n_users + n_items, n_users + n_items) sparse tensor; users first.
    """
    n_users, n_items = train.shape
    adj = sp.bmat([[None, train], [train.T, None]], format="csr").astype(np.float32)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv = np.zeros_like(deg)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    norm = sp.diags(inv) @ adj @ sp.diags(inv)
    norm = norm.tocsr()
    return torch.sparse_csr_tensor(
        torch.from_numpy(norm.indptr.astype(np.int64)),
        torch.from_numpy(norm.indices.astype(np.int64)),
        torch.from_numpy(norm.data.astype(np.float32)),
        size=(n_users + n_items, n_users + n_items),
        check_invariants=False,
    )


def propagate(adj: torch.Tensor, emb: torch.Tensor, layers: int) -> torch.Tensor:
    """Mean of ``emb, A emb, ..., A^K emb``; (N, D) -> (N, D)."""
    out, cur = emb, emb
    for _ in range(layers):
        cur = adj @ cur
        out = out + cur
    return out / (layers + 1)


@MODELS.register("lightgcn", "LightGCN", paper="arXiv:2002.02126")
class LightGCN(NeuralRecommender):
    """Graph-propagated user and item embeddings scored by inner product.

    ``prepare(split)`` must run before use (the trainer and run loader do it).
    In eval mode the propagated tables are cached until the next ``train()``.
    """

    Config = LightGCNConfig

    def __init__(self, n_users: int, n_items: int, config: LightGCNConfig) -> None:
        super().__init__(n_users, n_items, config)
        self.emb = nn.Embedding(n_users + n_items, config.hidden)
        nn.init.xavier_uniform_(self.emb.weight)
        self.adj: torch.Tensor | None = None
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def prepare(self, split: Any) -> None:
        """Build the normalised graph from the split's training interactions."""
        self.adj = normalized_adjacency(split.train_matrix())

    def train(self, mode: bool = True) -> LightGCN:
        """Switch mode and drop the eval-time cache."""
        self._cache = None
        return super().train(mode)

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.adj is None:
            raise RuntimeError("LightGCN.prepare(split) must be called before use")
        if self._cache is not None and not self.training:
            return self._cache
        adj = self.adj.to(self.emb.weight.device)
        out = propagate(adj, self.emb.weight, self.config.layers)
        users, items = out.split([self.n_users, self.n_items])
        if not self.training:
            self._cache = (users.detach(), items.detach())
        return users, items

    @property
    def item_embedding(self) -> torch.Tensor:
        """(n_items, D) propagated item embeddings."""
        return self._tables()[1]

    def query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, D) propagated user embeddings."""
        return self._tables()[0][batch["user"]]

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_items) scores; propagates once for both tables."""
        users, items = self._tables()
        return users[batch["user"]] @ items.T
