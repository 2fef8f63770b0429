"""BPR-MF: matrix factorisation trained with Bayesian personalised ranking.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback",
UAI 2009, arXiv:1205.2618. The BPR loss itself lives in the ``next-item``
objective (``loss: bpr``); this module holds the factorisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tamis.core.config import param
from tamis.recsys.models.base import MODELS, NeuralRecommender

__all__ = ["BPRMF", "BPRMFConfig"]


@dataclass
class BPRMFConfig:
    """Hyperparameters of BPR-MF."""

    hidden: int = param(64, "latent dimension D", ge=1)


@MODELS.register("bpr", "BPR-MF", paper="arXiv:1205.2618")
class BPRMF(NeuralRecommender):
    """Score(u, i) = <p_u, q_i>.

    Attributes:
        user_emb: (n_users, D) user factors.
        item_emb: (n_items, D) item factors.
    """

    Config = BPRMFConfig

    def __init__(self, n_users: int, n_items: int, config: BPRMFConfig) -> None:
        super().__init__(n_users, n_items, config)
        self.user_emb = nn.Embedding(n_users, config.hidden)
        self.item_emb = nn.Embedding(n_items, config.hidden)
        nn.init.xavier_normal_(self.user_emb.weight)
        nn.init.xavier_normal_(self.item_emb.weight)

    @property
    def item_embedding(self) -> torch.Tensor:
        """(n_items, D) item factors."""
        return self.item_emb.weight

    def query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """User factors of ``batch["user"]``, (B, D)."""
        return self.user_emb(batch["user"])
