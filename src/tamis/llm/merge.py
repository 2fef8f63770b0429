"""Run a merge described by a :class:`~tamis.llm.config.MergeConfig`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from tamis.core.io import atomic_write_json
from tamis.llm.config import MergeConfig
from tamis.llm.merging import LayerCoefficients, MergeParams, MergePlan, run_merge
from tamis.llm.models import resolve_model_dir

__all__ = ["plan_from_config", "run_merge_config"]

log = logging.getLogger(__name__)
_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def plan_from_config(config: MergeConfig) -> MergePlan:
    """Resolve paths, per-model parameters and the coefficients file.

    Raises:
        ValueError: If the coefficients file covers a different number of models.
    """
    p = config.parameters
    params = MergeParams(
        scaling=p.scaling,
        weights=[m.weight for m in config.models],
        densities=[
            m.density if m.density is not None else p.density for m in config.models
        ],
        drop_rates=[
            m.drop_rate if m.drop_rate is not None else p.drop_rate
            for m in config.models
        ],
        normalize=p.normalize,
        seed=p.seed,
    )
    coefficients = None
    if config.coefficients is not None:
        coefficients = LayerCoefficients.load(config.coefficients)
        if len(coefficients.models) != len(config.models):
            raise ValueError(
                f"{config.coefficients}: coefficients for {len(coefficients.models)} "
                f"models, the merge has {len(config.models)}"
            )
    return MergePlan(
        method=config.method,
        base=resolve_model_dir(config.base_model) if config.base_model else None,
        models=[resolve_model_dir(m.model) for m in config.models],
        params=params,
        coefficients=coefficients,
        output=Path(config.output),
        dtype=_DTYPES[config.dtype] if config.dtype else None,
        chunk_numel=config.chunk_numel,
        block_numel=config.block_numel,
        max_shard_bytes=config.max_shard_mb * 1024**2,
        flush_bytes=config.flush_mb * 1024**2,
        compile=config.compile,
        copy_tokenizer=config.copy_tokenizer,
        overwrite=config.overwrite,
    )


def run_merge_config(
    config: MergeConfig, run_dir: Path | None = None, resume: bool = False
) -> dict[str, Any]:
    """Merge into ``config.output``; the summary is also written beside the weights.

    A merge has no partial state worth resuming: it is rerun from the start
    (the output is only renamed into place when complete).
    """
    summary = run_merge(plan_from_config(config))
    atomic_write_json(Path(config.output) / "tamis_merge.json", summary)
    return summary
