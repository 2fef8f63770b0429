"""GRU4Rec: session-based recommendation with recurrent networks.

Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks",
ICLR 2016, arXiv:1511.06939; trained here, as in RecBole, with full-softmax
cross-entropy (or BPR/BCE) on next-item prediction over prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tamis.core.config import param
from tamis.recsys.models.base import MODELS, SequentialRecommender
from tamis.recsys.models.layers import check_widths, fast_dropout

__all__ = ["GRU4Rec", "GRU4RecConfig", "right_align"]


@dataclass
class GRU4RecConfig:
    """Hyperparameters of GRU4Rec."""

    hidden: int = param(64, "embedding size D (also the output size)", ge=1)
    gru_hidden: int = param(128, "GRU hidden size", ge=1)
    layers: int = param(1, "GRU layers", ge=1)
    dropout: float = param(0.3, "dropout on input embeddings", ge=0, lt=1)
    max_len: int = param(50, "maximum history length L", ge=1)
    recurrent_init: str = param(
        "orthogonal",
        "initialisation of the GRU's recurrent weights: orthogonal, or "
        "xavier_uniform (RecBole's choice)",
        choices=["orthogonal", "xavier_uniform"],
    )
    length_groups: list[int] = param(
        factory=lambda: [8, 16, 32],
        help="padded widths by which a batch is split by history length before "
        "encoding (exact: outputs and gradients are those of the whole batch, "
        "the padding columns are skipped); [] encodes the batch as one block",
    )

    def validate(self) -> None:
        """Check the group widths."""
        check_widths(self.length_groups)


def right_align(seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a left-padded batch to right padding.

    Args:
        seq: (B, L) left-padded ids (0 = padding).

    Returns:
        ``(right, lengths)``: (B, L) right-padded ids and (B,) lengths.
    """
    length = seq.shape[1]
    lengths = (seq > 0).sum(dim=1)  # (B,)
    idx = torch.arange(length, device=seq.device)[None, :] + (length - lengths)[:, None]
    right = seq.gather(1, idx.clamp(max=length - 1))
    right = right.masked_fill(idx >= length, 0)
    return right, lengths


@MODELS.register("gru4rec", "GRU4Rec", paper="arXiv:1511.06939")
class GRU4Rec(SequentialRecommender):
    """GRU over the history; the state after the last item predicts the next one.

    Sequences are right-aligned before the GRU so padding never enters the
    state of a real position.
    """

    Config = GRU4RecConfig

    def __init__(self, n_users: int, n_items: int, config: GRU4RecConfig) -> None:
        super().__init__(n_users, n_items, config)
        c = config
        self.item_emb = nn.Embedding(n_items + 1, c.hidden, padding_idx=0)
        self.gru = nn.GRU(
            c.hidden, c.gru_hidden, c.layers, batch_first=True, bias=False
        )
        self.proj = nn.Linear(c.gru_hidden, c.hidden)
        nn.init.xavier_normal_(self.item_emb.weight)
        for name, weight in self.gru.named_parameters():
            if "weight_hh" in name and c.recurrent_init == "orthogonal":
                nn.init.orthogonal_(weight)
            else:
                nn.init.xavier_uniform_(weight)

    @property
    def item_embedding(self) -> torch.Tensor:
        """(n_items, D) item table without the padding row."""
        return self.item_emb.weight[1:]

    def encode_padded(self, seq: torch.Tensor) -> torch.Tensor:
        """State after the last item, projected to D: (B, L) -> (B, D)."""
        seq = seq[:, -self.config.max_len :]
        right, lengths = right_align(seq)
        x = fast_dropout(self.item_emb(right), self.config.dropout, self.training)
        out, _ = self.gru(x)  # (B, L, H)
        last = (lengths - 1).clamp(min=0)
        h = out[torch.arange(len(seq), device=seq.device), last]  # (B, H)
        return self.proj(h)
