"""SASRec: self-attentive sequential recommendation.

Kang and McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018,
arXiv:1808.09781. The encoder follows the layout of RecBole's implementation
(post-LayerNorm blocks, GELU feed-forward, LayerNorm eps 1e-12, normal init
with std 0.02) so that numbers are comparable; inputs are left-padded, so the
position embedding of the most recent item is always the last one.

Speed on CPU: the last block computes the query, attention and feed-forward
only for the final position (the only output used), and dropout masks come from
:func:`~tamis.recsys.models.layers.fast_dropout`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tamis.core.config import param
from tamis.recsys.models.base import MODELS, SequentialRecommender
from tamis.recsys.models.layers import check_widths, fast_dropout

__all__ = ["SASRec", "SASRecConfig", "attention_mask"]


@dataclass
class SASRecConfig:
    """Hyperparameters of SASRec."""

    hidden: int = param(64, "embedding and hidden size D", ge=1)
    layers: int = param(2, "number of self-attention blocks", ge=1)
    heads: int = param(2, "attention heads (must divide hidden)", ge=1)
    inner: int = param(256, "feed-forward inner size", ge=1)
    dropout: float = param(0.5, "dropout on embeddings and block outputs", ge=0, lt=1)
    attn_dropout: float = param(0.5, "dropout on attention probabilities", ge=0, lt=1)
    max_len: int = param(50, "maximum history length L", ge=1)
    layer_norm_eps: float = param(1e-12, "LayerNorm epsilon", gt=0)
    init_std: float = param(0.02, "std of the normal weight initialisation", gt=0)
    length_groups: list[int] = param(
        factory=lambda: [8, 16, 32],
        help="padded widths by which a batch is split by history length before "
        "encoding (exact: outputs and gradients are those of the whole batch, "
        "the padding columns are skipped); [] encodes the batch as one block",
    )

    def validate(self) -> None:
        """Check that the heads divide the hidden size and the group widths."""
        if self.hidden % self.heads:
            raise ValueError(
                f"heads: {self.heads} does not divide hidden {self.hidden}"
            )
        check_widths(self.length_groups)


def attention_mask(seq: torch.Tensor, last_only: bool = False) -> torch.Tensor:
    """Boolean attention mask for left-padded sequences, True = may attend.

    A query attends to earlier or equal positions whose key is not padding; a
    query always sees itself, so padded rows never get an empty softmax.

    Args:
        seq: (B, L) item ids + 1, 0 = padding.
        last_only: Return only the mask row of the final query.

    Returns:
        (B, 1, L, L), or (B, 1, 1, L) when ``last_only``.
    """
    length = seq.shape[1]
    keys = (seq > 0)[:, None, None, :]  # (B, 1, 1, L)
    if last_only:
        return keys | (torch.arange(length, device=seq.device) == length - 1)
    causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
    eye = torch.eye(length, dtype=torch.bool, device=seq.device)
    return (keys & causal) | eye  # (B, 1, L, L)


class _Block(nn.Module):
    """Post-LayerNorm transformer block: attention then feed-forward."""

    def __init__(self, c: SASRecConfig) -> None:
        super().__init__()
        self.heads, self.c = c.heads, c
        self.qkv = nn.Linear(c.hidden, 3 * c.hidden)
        self.out = nn.Linear(c.hidden, c.hidden)
        self.norm1 = nn.LayerNorm(c.hidden, eps=c.layer_norm_eps)
        self.ff1 = nn.Linear(c.hidden, c.inner)
        self.ff2 = nn.Linear(c.inner, c.hidden)
        self.norm2 = nn.LayerNorm(c.hidden, eps=c.layer_norm_eps)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, last_only: bool
    ) -> torch.Tensor:
        """(B, L, D) -> (B, L, D), or (B, 1, D) when ``last_only``."""
        b, length, d = x.shape
        h, dh = self.heads, d // self.heads
        if last_only:
            # Keys and values at every position, the query only at the last:
            # a third less projection work in the final block.
            w, bias = self.qkv.weight, self.qkv.bias
            k, v = F.linear(x, w[d:], bias[d:]).split(d, dim=-1)  # 2 x (B, L, D)
            x = x[:, -1:]
            q = F.linear(x, w[:d], bias[:d])  # (B, 1, D)
        else:
            q, k, v = self.qkv(x).split(d, dim=-1)  # 3 x (B, L, D)
        q = q.reshape(b, -1, h, dh).transpose(1, 2)  # (B, h, Lq, dh)
        k = k.reshape(b, length, h, dh).transpose(1, 2)  # (B, h, L, dh)
        v = v.reshape(b, length, h, dh).transpose(1, 2)

        # Attention; explicit when attention dropout is active (fast masks).
        p = self.c.attn_dropout if self.training else 0.0
        if p > 0:
            scores = q @ k.transpose(-1, -2) / math.sqrt(dh)  # (B, h, Lq, L)
            scores = scores.masked_fill(~mask, float("-inf"))
            probs = fast_dropout(scores.softmax(dim=-1), p, True)
            ctx = probs @ v  # (B, h, Lq, dh)
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        ctx = ctx.transpose(1, 2).reshape(b, -1, d)  # (B, Lq, D)
        drop = self.c.dropout
        x = self.norm1(x + fast_dropout(self.out(ctx), drop, self.training))

        # Position-wise feed-forward.
        ff = self.ff2(F.gelu(self.ff1(x)))
        return self.norm2(x + fast_dropout(ff, drop, self.training))


@MODELS.register("sasrec", "SASRec", paper="arXiv:1808.09781")
class SASRec(SequentialRecommender):
    """Self-attentive sequential recommender (causal transformer encoder).

    Attributes:
        item_emb: (n_items + 1, D) input and output item table; row 0 is padding.
        pos_emb: (L, D) learned position embeddings.
    """

    Config = SASRecConfig

    def __init__(self, n_users: int, n_items: int, config: SASRecConfig) -> None:
        super().__init__(n_users, n_items, config)
        c = config
        self.item_emb = nn.Embedding(n_items + 1, c.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(c.max_len, c.hidden)
        self.norm = nn.LayerNorm(c.hidden, eps=c.layer_norm_eps)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.layers))
        self.apply(self._init)

    def _init(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @property
    def item_embedding(self) -> torch.Tensor:
        """(n_items, D) item table without the padding row."""
        return self.item_emb.weight[1:]

    def encode_padded(self, seq: torch.Tensor) -> torch.Tensor:
        """Representation at the last position, (B, D).

        Args:
            seq: (B, L) left-padded ids + 1; ``L`` may be below ``max_len``
                (longer inputs keep their last ``max_len`` items).
        """
        seq = seq[:, -self.config.max_len :]
        length = seq.shape[1]
        pos = self.pos_emb.weight[self.config.max_len - length :]  # (L, D)
        x = self.norm(self.item_emb(seq) + pos)  # (B, L, D)
        x = fast_dropout(x, self.config.dropout, self.training)
        full = attention_mask(seq)
        last = attention_mask(seq, last_only=True)
        for i, block in enumerate(self.blocks):
            final = i == len(self.blocks) - 1
            x = block(x, last if final else full, last_only=final)
        return x[:, -1]  # (B, D)
