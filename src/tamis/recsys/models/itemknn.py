"""Item kNN on co-occurrence: items similar to the history's items score high.

Sarwar et al., "Item-based Collaborative Filtering Recommendation Algorithms",
WWW 2001 (doi:10.1145/371920.372071). Similarity is the cosine between the
items' columns of the binary training user-item matrix (direct co-occurrence),
each item keeps its ``k`` most similar neighbours, and an item's score is the
sum of its similarities to the items in the history.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from tamis.core.config import param
from tamis.recsys.models.base import MODELS, Recommender
from tamis.recsys.models.sknn import binary_rows

__all__ = ["ItemKNN", "ItemKNNConfig", "cosine_topk"]


@dataclass
class ItemKNNConfig:
    """Hyperparameters of item kNN."""

    neighbours: int = param(100, "neighbours kept per item", ge=1)


def cosine_topk(train: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Item-item cosine similarity, top ``k`` per row, self excluded.

    Args:
        train: (n_users, n_items) binary matrix.
        k: Neighbours kept per item.

    Returns:
        (n_items, n_items) sparse similarity matrix.
    """
    co = (train.T @ train).tocsr().astype(np.float32)  # co-occurrence counts
    norm = np.sqrt(co.diagonal())
    co.setdiag(0)
    co.eliminate_zeros()
    co = co.tocoo()
    data = co.data / (norm[co.row] * norm[co.col])
    sim = sp.csr_matrix((data, (co.row, co.col)), shape=co.shape)
    rows, cols, vals = [], [], []
    for i in range(sim.shape[0]):
        lo, hi = sim.indptr[i], sim.indptr[i + 1]
        if hi - lo > k:
            keep = np.argpartition(-sim.data[lo:hi], k)[:k] + lo
        else:
            keep = np.arange(lo, hi)
        rows.append(np.full(len(keep), i))
        cols.append(sim.indices[keep])
        vals.append(sim.data[keep])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=sim.shape,
    )


@MODELS.register("itemknn", "Item kNN", paper="doi:10.1145/371920.372071")
class ItemKNN(Recommender):
    """Sum of co-occurrence cosine similarities to the history items."""

    Config = ItemKNNConfig
    trainable = False
    sequential = True

    def __init__(self, n_users: int, n_items: int, config: ItemKNNConfig) -> None:
        super().__init__(n_users, n_items, config)
        self.similarity: torch.Tensor | None = None  # sparse (n_items, n_items)

    def fit(self, split: Any, **_: Any) -> ItemKNN:
        """Compute the pruned item-item similarity from training interactions."""
        sim = cosine_topk(split.train_matrix(), self.config.neighbours).T.tocsr()
        with warnings.catch_warnings():
            # torch flags every sparse CSR tensor as beta; the ops used here are
            # construction and a dense @ sparse product, both long stable.
            warnings.filterwarnings("ignore", "Sparse CSR tensor support")
            self.similarity = torch.sparse_csr_tensor(
                torch.from_numpy(sim.indptr.astype(np.int64)),
                torch.from_numpy(sim.indices.astype(np.int64)),
                torch.from_numpy(sim.data.astype(np.float32)),
                size=sim.shape,
                check_invariants=False,
            )
        return self

    prepare = fit

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_items) = history indicator @ similarity."""
        if self.similarity is None:
            raise RuntimeError("ItemKNN.fit(split) must be called before scoring")
        hist = binary_rows(batch["seq"].cpu(), self.n_items)  # (B, n_items)
        # similarity holds S^T, so S^T @ hist^T = (hist @ S)^T.
        return (self.similarity @ hist.T).T.to(batch["seq"].device)
