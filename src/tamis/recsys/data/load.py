"""Read and filter a dataset as described by a data config."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tamis.recsys.data.dataset import InteractionData
from tamis.recsys.data.filters import deduplicate, kcore, min_length, min_rating
from tamis.recsys.data.readers import (
    read_atomic,
    read_pairs,
    read_presplit,
    read_sequences,
    read_sessions,
)
from tamis.recsys.data.synthetic import planted_sequences

__all__ = ["load_data"]

log = logging.getLogger(__name__)


def load_data(cfg: Any, seed: int = 0) -> InteractionData:
    """Read the data named by ``cfg`` (a ``DataConfig``) and apply its filters.

    Filters run in this order: minimum rating, deduplication, k-core, minimum
    sequence length.
    """
    fmt, path = cfg.format, Path(cfg.path) if cfg.path else None
    attrs = cfg.item_attributes or None
    if fmt == "sequences":
        data = read_sequences(path, attrs, name=cfg.name)
    elif fmt == "pairs":
        data = read_pairs(path, attrs, name=cfg.name)
    elif fmt == "atomic":
        data = read_atomic(
            path,
            cfg.name,
            cfg.user_field,
            cfg.item_field,
            cfg.time_field or None,
            cfg.rating_field or None,
        )
    elif fmt == "presplit":
        data = read_presplit(path, cfg.name)
    elif fmt == "sessions":
        data = read_sessions(
            path,
            cfg.sep,
            cfg.session_col,
            cfg.item_col,
            cfg.time_col or None,
            cfg.item_table or None,
            cfg.item_table_sep,
            cfg.item_key_col,
            cfg.item_value_cols,
            name=cfg.name,
        )
    elif fmt == "synthetic":
        data = planted_sequences(
            cfg.synthetic_users,
            cfg.synthetic_items,
            follow=cfg.synthetic_follow,
            seed=seed,
        )
    else:
        raise ValueError(f"data.format: got {fmt!r}")
    data = min_rating(data, cfg.min_rating)
    data = deduplicate(data, cfg.dedup)
    data = kcore(data, cfg.kcore)
    data = min_length(data, cfg.min_length)
    log.info("data %s: %s", data.name, data.summary())
    return data
