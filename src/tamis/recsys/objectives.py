"""Training objectives: what the trainer minimises for a model on a batch.

An objective is an ``nn.Module`` registered in :data:`OBJECTIVES` and built as
``cls(config, model, split)`` where ``config`` is its own ``Config`` dataclass
(filled from the train config's ``method_args``). Its ``forward(model, batch)``
returns ``(loss, logs)``: a scalar loss that is a **mean** over the batch (the
trainer relies on that to combine data-parallel shards exactly) and a dict of
floats to log. Parameters an objective owns join the optimizer.

Batches are dicts of tensors: ``"user"`` (B,), ``"seq"`` (B, L) left-padded
item ids + 1 (0 = padding), ``"target"`` (B,) 0-based item ids and
``"sample"`` (B,) indices into the split's ``training_samples()``.

Names not found in the registry trigger one import of
``tamis.recsys.methods`` (where method modules register themselves), so new
objectives plug in without changes here.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tamis.core.config import ConfigError, from_dict, param
from tamis.core.registry import Registry

__all__ = [
    "OBJECTIVES",
    "Objective",
    "NextItem",
    "NextItemConfig",
    "build_objective",
    "get_objective",
    "next_item_cross_entropy",
    "bpr_loss",
    "bce_loss",
    "sample_negatives",
]

log = logging.getLogger(__name__)

#: Registry of training objectives (name -> Objective subclass).
OBJECTIVES: Registry[type[Objective]] = Registry("training objective")


class Objective(nn.Module):
    """Base class of training objectives."""

    Config: ClassVar[type[Any]]

    def __init__(self, config: Any, model: nn.Module, split: Any) -> None:
        super().__init__()
        self.config = config

    def on_epoch_start(self, epoch: int) -> None:
        """Hook called before each epoch (0-based); default does nothing."""

    def forward(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss (a batch mean) and values to log."""
        raise NotImplementedError


def next_item_cross_entropy(
    query: torch.Tensor, item_embedding: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Full-softmax cross-entropy over all items.

    Args:
        query: (B, D) query vectors.
        item_embedding: (N, D) output item embeddings.
        target: (B,) item ids in [0, N).

    Returns:
        Scalar mean loss; logits are (B, N) = ``query @ item_embedding.T``.
    """
    return F.cross_entropy(query @ item_embedding.T, target)


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Mean ``-log sigmoid(pos - neg)`` over (B,) score pairs."""
    return -F.logsigmoid(pos - neg).mean()


def bce_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Mean ``-log sigmoid(pos) - log sigmoid(-neg)`` over (B,) scores."""
    return -(F.logsigmoid(pos) + F.logsigmoid(-neg)).mean()


def sample_negatives(
    target: torch.Tensor,
    n_items: int,
    user: torch.Tensor | None = None,
    seen_keys: torch.Tensor | None = None,
    rounds: int = 20,
) -> torch.Tensor:
    """One uniform negative per row, never equal to that row's target, (B,).

    With ``user`` and ``seen_keys`` (sorted ``user * n_items + item`` of the
    training interactions), negatives that the user interacted with in training
    are redrawn, up to ``rounds`` times; a row still unlucky after that keeps
    its last draw (only possible for users who saw almost every item).
    """
    offset = torch.randint(1, n_items, target.shape, device=target.device)
    neg = (target + offset) % n_items
    if user is None or seen_keys is None or len(seen_keys) == 0:
        return neg
    for _ in range(rounds):
        keys = user * n_items + neg
        pos = torch.searchsorted(seen_keys, keys).clamp(max=len(seen_keys) - 1)
        bad = torch.nonzero(seen_keys[pos] == keys).flatten()  # (b,)
        if len(bad) == 0:
            break
        redraw = torch.randint(1, n_items, bad.shape, device=target.device)
        neg[bad] = (target[bad] + redraw) % n_items
    return neg


@dataclass
class NextItemConfig:
    """Arguments of the ``next-item`` objective."""

    loss: str = param(
        "ce",
        "ce (full softmax), bpr or bce (one sampled negative)",
        choices=["ce", "bpr", "bce"],
    )
    l2: float = param(
        0.0, "L2 penalty on the batch's query and item vectors (BPR-style)", ge=0
    )
    exclude_seen: bool = param(
        True,
        "BPR/BCE negatives avoid every item of the user's training interactions "
        "(as RecBole does); false avoids only the target",
    )


@OBJECTIVES.register("next-item", "Next-item prediction")
class NextItem(Objective):
    """Predict the target item: full-softmax CE, or BPR/BCE with a sampled negative.

    Works with any model exposing ``query(batch)`` (B, D) and
    ``item_embedding`` (n_items, D).
    """

    Config = NextItemConfig

    def __init__(self, config: NextItemConfig, model: nn.Module, split: Any) -> None:
        super().__init__(config, model, split)
        keys = torch.empty(0, dtype=torch.int64)
        if config.loss != "ce" and config.exclude_seen and split is not None:
            mat = split.train_matrix().tocoo()
            flat = mat.row.astype(np.int64) * mat.shape[1] + mat.col.astype(np.int64)
            keys = torch.from_numpy(np.unique(flat))  # sorted (nnz,)
        # A buffer, so it follows the objective to the training device; it is
        # derived from the split, so it is not saved in checkpoints.
        self.register_buffer("seen_keys", keys, persistent=False)

    def forward(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss on ``batch`` (see class docstring)."""
        query = model.query(batch)  # (B, D)
        items = model.item_embedding  # (N, D)
        target = batch["target"]
        if self.config.loss == "ce":
            loss = next_item_cross_entropy(query, items, target)
            reg_items = items[target]
        else:
            neg = sample_negatives(
                target, items.shape[0], batch.get("user"), self.seen_keys
            )
            pos_e, neg_e = items[target], items[neg]
            pos = (query * pos_e).sum(-1)
            neg_s = (query * neg_e).sum(-1)
            loss = (
                bpr_loss(pos, neg_s)
                if self.config.loss == "bpr"
                else bce_loss(pos, neg_s)
            )
            reg_items = torch.cat([pos_e, neg_e])
        logs = {"loss_main": float(loss.detach())}
        if self.config.l2 > 0:
            reg = (query.pow(2).sum() + reg_items.pow(2).sum()) / len(target)
            loss = loss + self.config.l2 * reg
        return loss, logs


def get_objective(name: str) -> type[Objective]:
    """Objective class by name, importing ``tamis.recsys.methods`` if needed."""
    if name not in OBJECTIVES:
        try:
            importlib.import_module("tamis.recsys.methods")
        except ModuleNotFoundError as err:
            if err.name is None or not "tamis.recsys.methods".startswith(err.name):
                raise
    return OBJECTIVES.get(name)


def build_objective(
    name: str, args: dict[str, Any], model: nn.Module, split: Any
) -> Objective:
    """Build objective ``name`` with ``args`` validated by its ``Config``.

    Raises:
        KeyError: Unknown objective.
        ConfigError: Arguments that do not fit the objective's ``Config``.
    """
    cls = get_objective(name)
    try:
        config = from_dict(cls.Config, args)
    except ConfigError as err:
        raise ConfigError(f"method_args.{err}") from None
    return cls(config, model, split)
