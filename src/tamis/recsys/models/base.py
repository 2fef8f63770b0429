"""The recommender contract shared by every model in :mod:`tamis.recsys.models`.

Every model is an ``nn.Module`` built as ``Model(n_users, n_items, config)``
where ``config`` is an instance of the model's own ``Config`` dataclass. The
estimator verbs are the same for all:

* ``fit(split, ...) -> self`` — statistics for non-neural models, the trainer
  (:func:`tamis.recsys.train.fit_model`) for neural ones;
* ``score(batch) -> (B, n_items)`` — a score for every item;
* ``recommend(batch, k, exclude_history=True) -> (B, k)`` — top-``k`` item ids.

A *batch* is a dict of tensors with at least ``"user"`` (B,) dense user ids and
``"seq"`` (B, L) left-padded histories in which item ``i`` is written ``i + 1``
and ``0`` is padding (see :mod:`tamis.recsys.data.splits`). Training batches
also carry ``"target"`` (B,) and ``"sample"`` (B,) indices of training samples.

Neural models score by an inner product: ``query(batch)`` (B, D) against
``item_embedding`` (n_items, D). Sequential models additionally expose
``encode(seq) -> (B, D)``, the representation used for the next item.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch
from torch import nn

from tamis.core.registry import Registry

__all__ = [
    "MODELS",
    "Recommender",
    "NeuralRecommender",
    "SequentialRecommender",
    "build_model",
]

log = logging.getLogger(__name__)

#: Registry of recommender classes (name -> class with a ``Config`` dataclass).
MODELS: Registry[type[Recommender]] = Registry("recommender")


class Recommender(nn.Module):
    """Base class: estimator API over batches of users and histories.

    Attributes:
        n_users: Number of users.
        n_items: Number of items.
        config: The model's hyperparameters (its ``Config`` dataclass).
    """

    #: Hyperparameter dataclass of the model; subclasses override it.
    Config: ClassVar[type[Any]]
    #: Whether the model learns by gradient descent through the trainer.
    trainable: ClassVar[bool] = True
    #: Whether the model reads the history ``seq`` (vs the user id only).
    sequential: ClassVar[bool] = False

    def __init__(self, n_users: int, n_items: int, config: Any) -> None:
        super().__init__()
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self.config = config

    def prepare(self, split: Any) -> None:
        """Attach data-dependent structure (graphs, statistics) before use.

        Called before training and when a model is reloaded from a run. The
        default does nothing.
        """

    def fit(self, split: Any, **train_options: Any) -> Recommender:
        """Fit on the training part of ``split`` and return ``self``.

        Non-neural models override this; neural models call the trainer with
        ``train_options`` (see :func:`tamis.recsys.train.fit_model`).
        """
        from tamis.recsys.train import fit_model

        self.prepare(split)
        fit_model(self, split, **train_options)
        return self

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores of all items, (B, n_items); higher is better."""
        raise NotImplementedError

    @torch.no_grad()
    def recommend(
        self, batch: dict[str, torch.Tensor], k: int = 10, exclude_history: bool = True
    ) -> torch.Tensor:
        """Top-``k`` dense item ids per row, (B, k), best first.

        Args:
            batch: ``"user"`` (B,) and ``"seq"`` (B, L) as in the module docstring.
            k: List length.
            exclude_history: Never recommend items already in ``seq``.
        """
        was_training = self.training
        self.eval()
        scores = self.score(batch).float()  # (B, n_items)
        if exclude_history:
            seq = batch["seq"]
            scores = scores.masked_fill(_history_mask(seq, self.n_items), float("-inf"))
        self.train(was_training)
        return torch.topk(scores, min(k, self.n_items), dim=1).indices


def _history_mask(seq: torch.Tensor, n_items: int) -> torch.Tensor:
    """(B, n_items) bool mask of items present in the padded ``seq`` (B, L)."""
    mask = torch.zeros(seq.shape[0], n_items + 1, dtype=torch.bool, device=seq.device)
    mask.scatter_(1, seq, True)
    return mask[:, 1:]


class NeuralRecommender(Recommender):
    """A model that scores by ``query(batch) @ item_embedding.T``."""

    def query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Query vectors, (B, D)."""
        raise NotImplementedError

    @property
    def item_embedding(self) -> torch.Tensor:
        """Output item embeddings, (n_items, D); row ``i`` is dense item ``i``."""
        raise NotImplementedError

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inner-product scores, (B, n_items)."""
        return self.query(batch) @ self.item_embedding.T


class SequentialRecommender(NeuralRecommender):
    """A neural model whose query is an encoding of the history sequence.

    Subclasses implement :meth:`encode_padded`. When the model's config has a
    non-empty ``length_groups`` (padded widths such as ``[8, 16, 32]``),
    :meth:`encode` splits each batch into groups of similar history length and
    encodes each group cut to its own width (see
    :func:`~tamis.recsys.models.layers.grouped_encode`); the encoders are
    written so that this leaves every row's output unchanged.
    """

    sequential: ClassVar[bool] = True

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """Sequence representation for the next item.

        Args:
            seq: (B, L) left-padded item ids + 1, 0 = padding.

        Returns:
            (B, D) representation.
        """
        from tamis.recsys.models.layers import grouped_encode

        widths = getattr(self.config, "length_groups", None)
        if not widths:
            return self.encode_padded(seq)
        return grouped_encode(self.encode_padded, seq, widths)

    def encode_padded(self, seq: torch.Tensor) -> torch.Tensor:
        """Representation of a batch at its given padded width, (B, L) -> (B, D)."""
        raise NotImplementedError

    def query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``encode(batch["seq"])``, (B, D)."""
        return self.encode(batch["seq"])


def build_model(
    name: str, n_users: int, n_items: int, args: dict[str, Any]
) -> Recommender:
    """Build a registered model from its name and a plain mapping of arguments.

    Raises:
        KeyError: Unknown model name (the message lists the known ones).
        ConfigError: Arguments that do not match the model's ``Config``.
    """
    from tamis.core.config import ConfigError, from_dict

    cls = MODELS.get(name)
    try:
        config = from_dict(cls.Config, args)
    except ConfigError as err:
        raise ConfigError(f"model_args.{err}") from None
    return cls(n_users, n_items, config)
