"""Popularity: every user gets the most frequent training items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tamis.recsys.models.base import MODELS, Recommender

__all__ = ["Pop", "PopConfig"]


@dataclass
class PopConfig:
    """Popularity has no hyperparameters."""


@MODELS.register("pop", "Popularity")
class Pop(Recommender):
    """Scores every item by its number of training interactions.

    Attributes:
        counts: (n_items,) training interaction counts (a buffer, saved with
            the weights).
    """

    Config = PopConfig
    trainable = False

    def __init__(self, n_users: int, n_items: int, config: PopConfig) -> None:
        super().__init__(n_users, n_items, config)
        self.register_buffer("counts", torch.zeros(n_items))

    def fit(self, split: Any, **_: Any) -> Pop:
        """Count training interactions per item."""
        counts = np.bincount(split.train_flat, minlength=self.n_items)
        self.counts = torch.as_tensor(counts, dtype=torch.float32)
        return self

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_items) counts, the same row for everyone."""
        return self.counts.expand(len(batch["user"]), -1)
