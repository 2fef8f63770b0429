"""Semantic side of SRA-CL: item texts, user descriptions, embeddings, retrieval.

See :mod:`tamis.recsys.semantic.pipeline` for the cached pipeline and
:mod:`tamis.recsys.semantic.retrieval` for top-k neighbours with same-user
exclusion.
"""

from __future__ import annotations

from tamis.recsys.semantic.pipeline import (
    Semantics,
    SemanticsConfig,
    build_semantics,
    semantics_for_split,
)
from tamis.recsys.semantic.retrieval import topk_neighbours

__all__ = [
    "Semantics",
    "SemanticsConfig",
    "build_semantics",
    "semantics_for_split",
    "topk_neighbours",
]
