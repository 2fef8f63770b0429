"""Recommendation data: readers, the interaction dataset, filters and splits.

Main entry points:

* :class:`InteractionData` — interactions with dense 0-based ids, raw id maps
  (``user_ids`` / ``item_ids`` and ``user_index`` / ``item_index``) and item
  features aligned with dense item ids; ``n_users``, ``n_items``.
* :class:`SequentialSplit` — training positions per user, validation and test
  :class:`EvalSamples`; :meth:`SequentialSplit.training_samples` gives the
  leak-free (user, prefix, target) :class:`TrainingSamples`.
* :func:`load_data` — read + filter from a :class:`DataConfig`-like object.
"""

from tamis.recsys.data.dataset import InteractionData
from tamis.recsys.data.filters import deduplicate, kcore, min_length, min_rating
from tamis.recsys.data.load import load_data
from tamis.recsys.data.readers import (
    read_atomic,
    read_item_attributes,
    read_item_text,
    read_pairs,
    read_presplit,
    read_sequences,
    read_sessions,
)
from tamis.recsys.data.splits import (
    EvalSamples,
    SequentialSplit,
    TrainingSamples,
    leave_one_out,
    left_pad,
    make_split,
    ratio_split,
    temporal_split,
)
from tamis.recsys.data.synthetic import planted_sequences

__all__ = [
    "InteractionData",
    "EvalSamples",
    "SequentialSplit",
    "TrainingSamples",
    "deduplicate",
    "kcore",
    "min_length",
    "min_rating",
    "read_atomic",
    "read_item_attributes",
    "read_item_text",
    "read_pairs",
    "read_presplit",
    "read_sequences",
    "read_sessions",
    "leave_one_out",
    "left_pad",
    "make_split",
    "ratio_split",
    "temporal_split",
    "planted_sequences",
    "load_data",
]
