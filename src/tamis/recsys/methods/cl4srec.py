"""CL4SRec: contrastive learning with crop, mask and reorder augmentations.

Xie et al., "Contrastive Learning for Sequential Recommendation",
arXiv:2010.14395 (ICDE 2022). Each training sequence gets two views, each made
by one augmentation drawn uniformly from

* **crop**: a random contiguous sub-sequence of ``floor(eta * n)`` items;
* **mask**: ``floor(gamma * n)`` random items replaced by a mask token;
* **reorder**: a random contiguous sub-sequence of ``floor(beta * n)`` items
  shuffled;

and the loss is ``L = L_CE + lambda * NT-Xent(view_1, view_2)``.

The backbones here have no mask token, so a masked item is written as the
padding id (the encoder then ignores it, like a deleted item at a kept
position); the most recent item is never masked, so every view keeps a real
item at its last position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tamis.core.config import param
from tamis.recsys.methods.contrastive import (
    SeededModule,
    nt_xent,
    repad_left,
    unpad_left,
)
from tamis.recsys.objectives import Objective, next_item_cross_entropy

__all__ = [
    "CL4SRecArgs",
    "CL4SRec",
    "CL4SRecObjective",
    "crop",
    "mask",
    "reorder",
    "augment",
]

AUGMENTATIONS = ("crop", "mask", "reorder")


@dataclass
class CL4SRecArgs:
    """Hyperparameters of CL4SRec (``method_args`` of a train config)."""

    weight: float = param(0.1, "lambda: weight of the contrastive term", ge=0)
    temperature: float = param(1.0, "NT-Xent temperature", gt=0)
    similarity: str = param("dot", "view similarity", choices=("dot", "cos"))
    crop_eta: float = param(0.6, "share of items a crop keeps", gt=0, le=1)
    mask_gamma: float = param(0.3, "share of items masked", ge=0, lt=1)
    reorder_beta: float = param(0.6, "share of items in the shuffled span", ge=0, le=1)
    augmentations: list[str] = param(
        factory=lambda: list(AUGMENTATIONS), help="augmentations to draw from"
    )
    seed: int = param(0, "seed of the augmentation generator")

    def validate(self) -> None:
        """Check the augmentation names."""
        bad = [a for a in self.augmentations if a not in AUGMENTATIONS]
        if bad or not self.augmentations:
            raise ValueError(
                f"method_args.augmentations: got {self.augmentations}, expected a "
                f"non-empty subset of {list(AUGMENTATIONS)}"
            )


def _randint(high: int, generator: torch.Generator) -> int:
    return int(torch.randint(high, (1,), generator=generator))


def crop(items: torch.Tensor, eta: float, generator: torch.Generator) -> torch.Tensor:
    """A random contiguous sub-sequence of ``max(1, floor(eta * n))`` items."""
    n = len(items)
    size = max(1, int(eta * n))
    start = _randint(n - size + 1, generator)
    return items[start : start + size]


def mask(items: torch.Tensor, gamma: float, generator: torch.Generator) -> torch.Tensor:
    """``floor(gamma * n)`` items (never the last one) set to the padding id 0."""
    n = len(items)
    count = min(int(gamma * n), n - 1)
    out = items.clone()
    if count > 0:
        positions = torch.randperm(n - 1, generator=generator)[:count]
        out[positions] = 0
    return out


def reorder(
    items: torch.Tensor, beta: float, generator: torch.Generator
) -> torch.Tensor:
    """A random contiguous span of ``floor(beta * n)`` items, shuffled."""
    n = len(items)
    size = int(beta * n)
    out = items.clone()
    if size > 1:
        start = _randint(n - size + 1, generator)
        perm = torch.randperm(size, generator=generator)
        out[start : start + size] = items[start : start + size][perm]
    return out


def augment(
    seq: torch.Tensor, args: CL4SRecArgs, generator: torch.Generator
) -> torch.Tensor:
    """One augmented view of a left-padded batch; one random operator per row.

    Args:
        seq: (B, L) left-padded ids (0 = padding).
        args: Augmentation shares.
        generator: Source of randomness (CPU).

    Returns:
        (B, L) left-padded view on ``seq``'s device.
    """
    rows = []
    choice = torch.randint(
        len(args.augmentations), (seq.shape[0],), generator=generator
    )
    for items, c in zip(unpad_left(seq.cpu()), choice.tolist(), strict=True):
        op = args.augmentations[c]
        if len(items) == 0:
            rows.append(items)
        elif op == "crop":
            rows.append(crop(items, args.crop_eta, generator))
        elif op == "mask":
            rows.append(mask(items, args.mask_gamma, generator))
        else:
            rows.append(reorder(items, args.reorder_beta, generator))
    return repad_left(rows, seq.shape[1]).to(seq.device)


class CL4SRec(SeededModule):
    """The CL4SRec objective: next-item cross-entropy plus NT-Xent over views.

    Args:
        args: Hyperparameters.
        ce_loss: ``ce_loss(model, h, target) -> loss`` of the plain backbone.

    Attributes:
        generator: The augmentation generator (part of the training state).
    """

    def __init__(self, args: CL4SRecArgs, ce_loss: Any) -> None:
        super().__init__()
        self.args = args
        self.ce_loss = ce_loss
        self.generator = torch.Generator().manual_seed(args.seed)

    def forward(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch and its parts for logging."""
        seq = batch["seq"]  # (B, L)
        h = model.encode(seq)  # (B, D)
        ce = self.ce_loss(model, h, batch["target"])
        logs = {"ce": float(ce.detach())}
        if self.args.weight == 0 or seq.shape[0] < 2:
            return ce, logs

        # Two augmented views, encoded in one pass: (2B, L) -> (2B, D).
        views = torch.cat(
            [
                augment(seq, self.args, self.generator),
                augment(seq, self.args, self.generator),
            ]
        )
        z = model.encode(views)
        cl = nt_xent(
            z[: len(seq)], z[len(seq) :], self.args.temperature, self.args.similarity
        )
        logs["cl"] = float(cl.detach())
        return ce + self.args.weight * cl, logs


class CL4SRecObjective(Objective):
    """Trainer objective ``cl4srec`` (see :class:`CL4SRec`).

    Args:
        config: :class:`CL4SRecArgs` from the train config's ``method_args``.
        model: The backbone (any model with ``encode`` and ``item_embedding``).
        split: The data split (unused; views come from the batch itself).
    """

    Config = CL4SRecArgs

    def __init__(self, config: CL4SRecArgs, model: nn.Module, split: Any) -> None:
        super().__init__(config, model, split)
        if not hasattr(model, "encode"):
            raise ValueError(
                f"cl4srec needs a sequential backbone with encode(seq); "
                f"{type(model).__name__} has none"
            )
        self.core = CL4SRec(config, _ce_loss)

    def forward(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch (see :class:`CL4SRec`)."""
        return self.core(model, batch)


def _ce_loss(model: nn.Module, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The backbone's own full-softmax next-item cross-entropy."""
    return next_item_cross_entropy(h, model.item_embedding, target)
