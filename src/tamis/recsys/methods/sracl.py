"""SRA-CL: semantic-retrieval-augmented contrastive learning.

Cui et al., "Semantic Retrieval Augmented Contrastive Learning for Sequential
Recommendation", arXiv:2503.04162 (NeurIPS 2025). The loss of a training batch
is

    L = L_CE + alpha * L_user + beta * L_item

* ``L_user`` (cross-sequence): the anchor prefix representation ``h_a`` is
  contrasted with ``p_a = sum_j w_j h_j``, a blend of the backbone encodings of
  its k semantically retrieved neighbour prefixes (other users only). The
  weights come from a GAT-style attention over the *semantic* vectors:
  ``e_j = LeakyReLU_0.2(a^T [W z_a ; W z_j])``, ``w = softmax_j(e_j)``.
* ``L_item`` (intra-sequence): two views of the anchor, in each of which every
  item is replaced with probability ``substitution_rate`` by one of its
  semantic neighbour items; the views are contrasted.

Both terms are the in-batch NT-Xent of :func:`~tamis.recsys.methods.contrastive.
nt_xent`. The released code applies dropout to the normalised attention weights,
so its blend is not a convex combination during training; here attention
dropout removes whole neighbours before the softmax (at least one is kept), so
the weights always sum to one.

Efficiency: instead of 1 + 2 + k separate backbone passes per sample, the
anchor, both views and each *unique* neighbour prefix of the batch go through
the backbone once, in a few calls grouped by sequence length
(``length_groups``), so that short prefixes are not padded to the longest row
of the step; ``neighbour_sample`` draws a subset of the k neighbours per step;
``neighbour_encoding: batch-nograd`` encodes them without gradients, and
``memory`` reuses each training sample's latest (detached) anchor encoding, at
most one epoch old, so that neighbours cost no backbone pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tamis.core.config import param
from tamis.recsys.methods.contrastive import (
    SeededModule,
    encode_by_length,
    nt_xent,
    stack_left,
    trim_left,
)
from tamis.recsys.objectives import Objective, next_item_cross_entropy
from tamis.recsys.semantic.pipeline import (
    Semantics,
    SemanticsConfig,
    semantics_for_split,
)

log = logging.getLogger(__name__)

__all__ = [
    "SRACLArgs",
    "SRACL",
    "SRACLObjective",
    "AttentionSynthesiser",
    "synthesis_weights",
    "substitution_table",
    "substitute_items",
    "sample_neighbours",
]


@dataclass
class SRACLArgs:
    """Hyperparameters of SRA-CL (``method_args`` of a train config)."""

    alpha: float = param(0.1, "weight of the cross-sequence (user) term", ge=0)
    beta: float = param(0.1, "weight of the intra-sequence (item) term", ge=0)
    temperature: float = param(1.0, "NT-Xent temperature", gt=0)
    similarity: str = param("dot", "view similarity", choices=("dot", "cos"))
    substitution_rate: float = param(
        0.2, "probability that an item is swapped for a semantic neighbour", ge=0, le=1
    )
    synthesis: str = param(
        "attention",
        "neighbour blend: attention (learned) or mean (ablation)",
        choices=("attention", "mean"),
    )
    attention_dim: int = param(64, "output size of the attention projection W", ge=1)
    attention_dropout: float = param(
        0.5,
        "probability of dropping a neighbour from the blend (training)",
        ge=0,
        lt=1,
    )
    neighbour_sample: int = param(
        0, "neighbours drawn per anchor and step (0 = all k)", ge=0
    )
    neighbour_encoding: str = param(
        "batch",
        "batch: unique neighbours encoded with gradients each step (as the paper); "
        "batch-nograd: encoded without gradients; memory: last anchor encoding of "
        "each training sample, refreshed as it is trained on (cheapest)",
        choices=("batch", "batch-nograd", "memory"),
    )
    length_groups: int = param(
        4,
        "backbone calls per step: rows (anchors, views, neighbours) are grouped "
        "by length so that short ones are not padded to the longest (1 = one call)",
        ge=1,
    )
    seed: int = param(0, "seed of the method's own random generator")
    semantics: SemanticsConfig = param(
        factory=SemanticsConfig, help="semantic pipeline and retrieval settings"
    )


# ---------------------------------------------------------------------------
# Attention-weighted synthesis


def synthesis_weights(
    logits: torch.Tensor, valid: torch.Tensor, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax over each row's admissible neighbours.

    Args:
        logits: (B, m) attention scores.
        valid: (B, m) bool, neighbour exists.
        keep: (B, m) bool, neighbour survives attention dropout (optional). A
            row whose kept set is empty falls back to all valid neighbours.

    Returns:
        (B, m) weights: zero outside the admissible set, rows with at least one
        valid neighbour sum to one, rows with none are all zero.
    """
    allowed = valid if keep is None else valid & keep
    allowed = torch.where(allowed.any(dim=1, keepdim=True), allowed, valid)
    masked = logits.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(masked, dim=1)
    return torch.nan_to_num(weights, nan=0.0)  # rows with no valid neighbour


class AttentionSynthesiser(nn.Module):
    """GAT-style attention over semantic vectors that weights neighbour encodings.

    ``e_j = LeakyReLU_0.2(a^T [W z_a ; W z_j])``, with ``W`` of shape
    (semantic_dim -> attention_dim) and ``a`` of size 2 * attention_dim.

    Args:
        semantic_dim: Size of the semantic vectors ``z``.
        attention_dim: Size of the projected vectors.
        dropout: Probability of dropping a neighbour during training.
        generator: Generator for initialisation and dropout (kept separate from
            the global one, so that adding the module changes no other draws).
        mode: ``"attention"`` or ``"mean"`` (uniform weights).
    """

    def __init__(
        self,
        semantic_dim: int,
        attention_dim: int,
        dropout: float,
        generator: torch.Generator,
        mode: str = "attention",
    ) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(attention_dim, semantic_dim))
        self.a = nn.Parameter(torch.empty(2 * attention_dim))
        bound = 1.0 / np.sqrt(semantic_dim)
        with torch.no_grad():
            self.W.uniform_(-bound, bound, generator=generator)
            self.a.uniform_(-bound, bound, generator=generator)
        self.dropout = dropout
        self.generator = generator
        self.mode = mode

    def logits(self, z_anchor: torch.Tensor, z_neigh: torch.Tensor) -> torch.Tensor:
        """Attention scores (B, m) from z_anchor (B, Ds) and z_neigh (B, m, Ds)."""
        pa = z_anchor @ self.W.T  # (B, d_a)
        pn = z_neigh @ self.W.T  # (B, m, d_a)
        d = pa.shape[-1]
        e = (pa @ self.a[:d])[:, None] + pn @ self.a[d:]  # (B, m)
        return F.leaky_relu(e, 0.2)

    def forward(
        self, z_anchor: torch.Tensor, z_neigh: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """Weights (B, m) that sum to one over each row's valid neighbours."""
        if self.mode == "mean":
            return synthesis_weights(
                torch.zeros(valid.shape, device=valid.device), valid
            )
        keep = None
        if self.training and self.dropout > 0:
            draw = torch.rand(valid.shape, generator=self.generator)
            keep = (draw >= self.dropout).to(valid.device)
        return synthesis_weights(self.logits(z_anchor, z_neigh), valid, keep)


# ---------------------------------------------------------------------------
# Semantic item substitution


def substitution_table(
    item_neighbours: np.ndarray,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbour table in padded-id space (item ``i`` written ``i + 1``).

    Args:
        item_neighbours: (n_items, k) dense ids, ``-1`` = none; valid entries
            first in each row.

    Returns:
        ``(table, counts)``: (n_items + 1, k) padded ids (row 0, padding, and
        missing entries are 0) and (n_items + 1,) number of valid neighbours.
    """
    nb = torch.as_tensor(np.asarray(item_neighbours), dtype=torch.long)
    valid = nb >= 0
    table = torch.zeros(nb.shape[0] + 1, nb.shape[1], dtype=torch.long)
    table[1:] = torch.where(valid, nb + 1, torch.zeros_like(nb))
    counts = torch.zeros(nb.shape[0] + 1, dtype=torch.long)
    counts[1:] = valid.sum(dim=1)
    return table, counts


def substitute_items(
    seq: torch.Tensor,
    table: torch.Tensor,
    counts: torch.Tensor,
    rate: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Replace each item, with probability ``rate``, by one of its neighbours.

    The replacement is drawn uniformly from the item's own neighbour list;
    padding and items without neighbours are never changed.

    Args:
        seq: (B, L) padded ids.
        table: (n_items + 1, k) from :func:`substitution_table`.
        counts: (n_items + 1,) valid neighbours per padded id.
        rate: Substitution probability.
        generator: CPU generator.

    Returns:
        (B, L) view on ``seq``'s device.
    """
    ids = seq.cpu()
    n_valid = counts[ids]  # (B, L)
    swap = (torch.rand(ids.shape, generator=generator) < rate) & (n_valid > 0)
    u = torch.rand(ids.shape, generator=generator)
    pick = (u * n_valid).long().clamp(max=table.shape[1] - 1)  # (B, L)
    out = torch.where(swap, table[ids, pick], ids)
    return out.to(seq.device)


def sample_neighbours(
    neighbours: torch.Tensor, m: int, generator: torch.Generator
) -> torch.Tensor:
    """Keep ``m`` random valid entries of each row of a (B, k) table (-1 = none).

    Returns:
        (B, min(m, k)) table; rows with fewer than m valid entries keep them all
        and are padded with -1.
    """
    if m <= 0 or m >= neighbours.shape[1]:
        return neighbours
    noise = torch.rand(neighbours.shape, generator=generator)
    noise = noise.masked_fill(neighbours < 0, 2.0)  # invalid ones sort last
    order = noise.argsort(dim=1)[:, :m]
    return neighbours.gather(1, order)


# ---------------------------------------------------------------------------
# The objective


class SRACL(SeededModule):
    """The SRA-CL objective for any backbone with ``encode(seq) -> (B, D)``.

    Args:
        args: Hyperparameters.
        semantics: Vectors and neighbour tables of the training samples.
        padded_samples: (S, L) padded input sequence of every training sample
            (row ``s`` belongs to ``batch["sample"] == s``).
        ce_loss: ``ce_loss(model, h, target) -> loss`` of the plain backbone.
        hidden: Size D of the backbone's encodings (``memory`` mode only).

    Attributes:
        synthesiser: The learnable attention (its parameters must be optimised
            together with the backbone's).
        generator: The method's random generator (views, sampling, dropout).
    """

    def __init__(
        self,
        args: SRACLArgs,
        semantics: Semantics,
        padded_samples: np.ndarray | torch.Tensor,
        ce_loss: Any,
        hidden: int = 0,
    ) -> None:
        super().__init__()
        if len(padded_samples) != len(semantics.prefix_neighbours):
            raise ValueError(
                f"semantics cover {len(semantics.prefix_neighbours)} training samples "
                f"but the data has {len(padded_samples)}; rebuild the semantics"
            )
        self.args = args
        self.ce_loss = ce_loss
        self.generator = torch.Generator().manual_seed(args.seed)
        self.synthesiser = AttentionSynthesiser(
            semantics.prefix_vectors.shape[1],
            args.attention_dim,
            args.attention_dropout,
            self.generator,
            args.synthesis,
        )
        table, counts = substitution_table(semantics.item_neighbours)
        self.register_buffer("sub_table", table, persistent=False)
        self.register_buffer("sub_counts", counts, persistent=False)
        self.register_buffer(
            "z",
            torch.as_tensor(semantics.prefix_vectors, dtype=torch.float32),
            persistent=False,
        )
        self.register_buffer(
            "neighbours",
            torch.as_tensor(semantics.prefix_neighbours, dtype=torch.long),
            persistent=False,
        )
        self.register_buffer(
            "padded",
            torch.as_tensor(np.asarray(padded_samples), dtype=torch.long),
            persistent=False,
        )
        if args.neighbour_encoding == "memory":
            if hidden < 1:
                raise ValueError("neighbour_encoding: memory needs the backbone size")
            # Persistent, so that a resumed run continues with the same memory.
            self.register_buffer("memory", torch.zeros(len(padded_samples), hidden))
            self.register_buffer("seen", torch.zeros(len(padded_samples), dtype=bool))

    def forward(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch and its parts for logging."""
        seq, samples = batch["seq"], batch["sample"]  # (B, L), (B,)
        n = seq.shape[0]
        use_user = self.args.alpha > 0 and n >= 2
        use_item = self.args.beta > 0 and n >= 2
        if not (use_user or use_item):
            h = model.encode(seq)  # (B, D): exactly the plain backbone's pass
            ce = self.ce_loss(model, h, batch["target"])
            return ce, {"ce": float(ce.detach())}

        # Views and neighbour sequences; one backbone call for all that need grads.
        mode = self.args.neighbour_encoding
        parts = [seq]
        if use_item:
            rate = self.args.substitution_rate
            parts += [
                substitute_items(
                    seq, self.sub_table, self.sub_counts, rate, self.generator
                )
                for _ in range(2)
            ]
        if use_user:
            nb = self.neighbours[samples]  # (B, k)
            nb = sample_neighbours(nb.cpu(), self.args.neighbour_sample, self.generator)
            nb = nb.to(seq.device)  # (B, m)
            valid = nb >= 0
            if mode == "memory":
                valid &= self.seen[nb.clamp(min=0)]
            unique, inverse = torch.unique(nb[valid], return_inverse=True)
            if mode == "batch":
                parts.append(trim_left(self.padded[unique]))  # (U, L')
        groups = self.args.length_groups
        encoded = encode_by_length(model.encode, stack_left(parts), groups)  # (R, D)
        h = encoded[:n]
        ce = self.ce_loss(model, h, batch["target"])
        loss, logs = ce, {"ce": float(ce.detach())}

        # Intra-sequence term: the two substituted views.
        if use_item:
            item_cl = nt_xent(
                encoded[n : 2 * n],
                encoded[2 * n : 3 * n],
                self.args.temperature,
                self.args.similarity,
            )
            loss = loss + self.args.beta * item_cl
            logs["item_cl"] = float(item_cl.detach())

        # Cross-sequence term: each unique neighbour encoded once (or remembered).
        if use_user:
            if mode == "batch":
                h_unique = encoded[n * (3 if use_item else 1) :]
            elif mode == "batch-nograd":
                with torch.no_grad():
                    h_unique = encode_by_length(
                        model.encode, trim_left(self.padded[unique]), groups
                    )
            else:
                h_unique = self.memory[unique]
            # (B, m, D) by one gather; invalid slots read an appended zero row.
            slot = torch.full_like(nb, len(unique))
            slot[valid] = inverse
            h_neigh = torch.cat([h_unique, h_unique.new_zeros(1, h.shape[1])])[slot]
            user_cl = self._user_term(h, samples, nb, valid, h_neigh)
            if user_cl is not None:
                loss = loss + self.args.alpha * user_cl
                logs["user_cl"] = float(user_cl.detach())
            logs["unique_neighbours"] = float(len(unique))
            if mode == "memory":
                self.memory[samples] = h.detach()
                self.seen[samples] = True
        return loss, logs

    def _user_term(
        self,
        h: torch.Tensor,
        samples: torch.Tensor,
        nb: torch.Tensor,
        valid: torch.Tensor,
        h_neigh: torch.Tensor,
    ) -> torch.Tensor | None:
        """NT-Xent between anchors h (B, D) and blends of h_neigh (B, m, D)."""
        z_anchor = self.z[samples]  # (B, Ds)
        z_neigh = self.z[nb.clamp(min=0)]  # (B, m, Ds)
        weights = self.synthesiser(z_anchor, z_neigh, valid)  # (B, m)
        positive = (weights[..., None] * h_neigh).sum(dim=1)  # (B, D)
        rows = valid.any(dim=1)
        if int(rows.sum()) < 2:
            return None
        return nt_xent(
            h[rows], positive[rows], self.args.temperature, self.args.similarity
        )


class SRACLObjective(Objective):
    """Trainer objective ``sra-cl``: builds (or loads) the semantics of the split
    and applies :class:`SRACL` to every batch.

    Args:
        config: :class:`SRACLArgs` from the train config's ``method_args``.
        model: The backbone (any model with ``encode`` and ``item_embedding``).
        split: The data split; its training samples are the retrieval pool.
    """

    Config = SRACLArgs

    def __init__(self, config: SRACLArgs, model: nn.Module, split: Any) -> None:
        super().__init__(config, model, split)
        if not hasattr(model, "encode"):
            raise ValueError(
                f"sra-cl needs a sequential backbone with encode(seq); "
                f"{type(model).__name__} has none"
            )
        semantics = semantics_for_split(split, config.semantics)
        self.semantics_info = dict(semantics.info)
        log.info(
            "sra-cl semantics: %s; encoder %s; %d prefixes, k=%d; same-user "
            "neighbour share %.3f; cache %s",
            semantics.info.get("summary_source"),
            semantics.info.get("encoder"),
            len(semantics.prefix_neighbours),
            config.semantics.k,
            semantics.same_user_share(),
            semantics.info.get("folder"),
        )
        from tamis.recsys.train import model_max_len

        max_len = model_max_len(model)
        padded = split.training_samples().padded(max_len)  # (S, L)
        hidden = int(model.item_embedding.shape[1])
        self.core = SRACL(config, semantics, padded, _ce_loss, hidden)

    def forward(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch (see :class:`SRACL`)."""
        return self.core(model, batch)


def _ce_loss(model: nn.Module, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The backbone's own full-softmax next-item cross-entropy."""
    return next_item_cross_entropy(h, model.item_embedding, target)
