"""Config kinds of the recommendation domain.

``rec-train`` (:class:`RecTrainConfig`) describes one experiment: where the data
is and how to read it, the split, the model and its arguments, the training
objective (``method``) and its arguments, the trainer and the evaluation.
Model and objective arguments are plain mappings validated by the model's or
objective's own ``Config`` dataclass when the config is loaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from tamis.core.config import ConfigError, from_dict, param, register_config

__all__ = [
    "DataConfig",
    "SplitConfig",
    "TrainConfig",
    "EvalConfig",
    "RecTrainConfig",
]

FORMATS = ["sequences", "pairs", "atomic", "presplit", "sessions", "synthetic"]


@dataclass
class DataConfig:
    """Where the interactions are and how to read and filter them."""

    format: str = param("sequences", "file format", choices=FORMATS)
    path: str = param(
        "",
        "data file (sequences, pairs, sessions) or folder (atomic, presplit)",
    )
    name: str = param("", "data set name; the file prefix for atomic and presplit")
    item_attributes: str = param(
        "", "optional JSON item -> attribute ids (sequences, pairs)"
    )
    item_table: str = param("", "optional item side table CSV (sessions)")
    sep: str = param(";", "column separator of the session log")
    session_col: str = param("session_id", "session id column (sessions)")
    item_col: str = param("item_id", "item id column (sessions)")
    time_col: str = param("timeframe", "time column (sessions); empty for none")
    item_table_sep: str = param(";", "separator of the item side table")
    item_key_col: str = param("itemId", "item id column of the item side table")
    item_value_cols: list[str] = param(
        factory=lambda: ["categoryId"], help="feature columns of the item side table"
    )
    user_field: str = param("user_id", "user column (atomic)")
    item_field: str = param("item_id", "item column (atomic)")
    time_field: str = param("timestamp", "time column (atomic); empty for none")
    rating_field: str = param("rating", "rating column (atomic); empty for none")
    min_rating: float | None = param(None, "keep interactions rated at least this")
    dedup: str = param(
        "none",
        "drop repeats: none, consecutive, first",
        choices=["none", "consecutive", "first"],
    )
    kcore: int = param(0, "iterative k-core on users and items (0 = off)", ge=0)
    min_length: int = param(0, "drop users with fewer interactions (0 = off)", ge=0)
    synthetic_users: int = param(500, "users of the synthetic data", ge=1)
    synthetic_items: int = param(100, "items of the synthetic data", ge=2)
    synthetic_follow: float = param(
        0.8, "probability that item i is followed by i + 1 (synthetic)", ge=0, le=1
    )

    def validate(self) -> None:
        """A real format needs a path."""
        if self.format != "synthetic" and not self.path:
            raise ValueError(f"path: required for format {self.format!r}")
        if self.format in ("atomic", "presplit") and not self.name:
            raise ValueError(f"name: required (file prefix) for format {self.format!r}")


@dataclass
class SplitConfig:
    """How interactions are split into training, validation and test."""

    method: str = param(
        "leave-one-out", "split rule", choices=["leave-one-out", "ratio", "temporal"]
    )
    ratios: list[float] = param(
        factory=lambda: [0.8, 0.1, 0.1],
        help="train/valid/test shares (ratio; temporal uses the last two)",
    )

    def validate(self) -> None:
        """Three non-negative shares summing to one."""
        if len(self.ratios) != 3 or min(self.ratios) < 0:
            raise ValueError(f"ratios: got {self.ratios}, expected 3 shares >= 0")
        if abs(sum(self.ratios) - 1.0) > 1e-6:
            raise ValueError(f"ratios: got {self.ratios}, expected a sum of 1")


@dataclass
class TrainConfig:
    """Mini-batch AdamW training with early stopping on a validation metric."""

    epochs: int = param(100, "maximum number of epochs", ge=1)
    batch_size: int = param(256, "global batch size (split across DDP ranks)", ge=1)
    lr: float = param(1e-3, "AdamW learning rate", gt=0)
    weight_decay: float = param(0.0, "AdamW weight decay", ge=0)
    patience: int = param(10, "epochs without validation gain before stopping", ge=1)
    valid_metric: str = param("ndcg@10", "validation metric for early stopping")
    eval_every: int = param(1, "validate every this many epochs", ge=1)
    keep_checkpoints: int = param(2, "checkpoints kept in the run directory", ge=1)
    time_budget_s: float = param(
        0.0,
        "stop after the first epoch that ends past this many seconds (0 = off)",
        ge=0,
    )
    bucket_by_length: bool = param(
        False,
        "group similar history lengths into batches (less padding, faster on "
        "short-sequence data; batches are then not i.i.d.)",
    )

    def validate(self) -> None:
        """The metric must be one the evaluator reports."""
        name, _, k = self.valid_metric.partition("@")
        if name not in ("hr", "ndcg", "mrr") or not k.isdigit():
            raise ValueError(
                f"valid_metric: got {self.valid_metric!r}, expected hr@K, ndcg@K "
                "or mrr@K"
            )


@dataclass
class EvalConfig:
    """Full-ranking evaluation settings."""

    ks: list[int] = param(factory=lambda: [5, 10, 20], help="metric cut-offs K")
    mask_history: bool = param(
        False, "remove the sample's history items from the candidates"
    )
    batch_size: int = param(
        256, "samples per scoring batch (256 keeps a score block in cache)", ge=1
    )

    def validate(self) -> None:
        """Positive cut-offs."""
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks: got {self.ks}, expected positive cut-offs")


@register_config("rec-train", runner="tamis.recsys.train:run_training")
@dataclass
class RecTrainConfig:
    """One recommendation experiment: data, split, model, objective, training."""

    name: str = param("rec", "run name (prefix of the run directory)")
    out: str = param("runs/rec", "parent folder of run directories")
    seed: int = param(2024, "random seed")
    device: str = param("auto", "auto, cpu or cuda", choices=["auto", "cpu", "cuda"])
    data: DataConfig = param(factory=DataConfig, help="data source")
    split: SplitConfig = param(factory=SplitConfig, help="split rule")
    model: str = param("sasrec", "registered model name")
    model_args: dict[str, Any] = param(factory=dict, help="arguments of the model")
    method: str = param("next-item", "registered training objective")
    method_args: dict[str, Any] = param(factory=dict, help="arguments of the objective")
    train: TrainConfig = param(factory=TrainConfig, help="trainer settings")
    eval: EvalConfig = param(factory=EvalConfig, help="evaluation settings")

    def validate(self) -> None:
        """Check the model and objective names and their arguments."""
        from tamis.recsys.models import MODELS
        from tamis.recsys.objectives import get_objective

        try:
            model_cls = MODELS.get(self.model)
        except KeyError as err:
            raise ConfigError(f"model: {err.args[0]}") from None
        try:
            from_dict(model_cls.Config, self.model_args)
        except ConfigError as err:
            raise ConfigError(f"model_args.{err}") from None
        try:
            objective = get_objective(self.method)
        except KeyError as err:
            raise ConfigError(f"method: {err.args[0]}") from None
        try:
            from_dict(objective.Config, self.method_args)
        except ConfigError as err:
            raise ConfigError(f"method_args.{err}") from None


def _import_sub_kinds() -> None:
    """Register the config kinds that other recsys packages define.

    The core config registry imports only this module for the domain, so
    kinds declared next to their code (the collaborative-information study)
    are imported from here; a package that is not built contributes nothing.
    """
    for module in SUB_KIND_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name is None or not module.startswith(err.name):
                raise


#: Modules of the domain that register further config kinds.
SUB_KIND_MODULES = ("tamis.recsys.analysis.config",)
_import_sub_kinds()
