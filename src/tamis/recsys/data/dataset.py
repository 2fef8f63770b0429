"""The in-memory interaction dataset shared by every recommender in tamis.

An :class:`InteractionData` holds one row per interaction (user, item, optional
timestamp and rating) with dense 0-based ids, the raw ids in both directions and
item features aligned with the dense item ids. Rows are kept in event order:
sorted by user, then by timestamp, ties (or no timestamps) in file order. A
user's rows therefore read as that user's sequence.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

__all__ = ["InteractionData"]

log = logging.getLogger(__name__)


@dataclass
class InteractionData:
    """Interactions with dense ids, raw id maps and aligned item features.

    Attributes:
        user: (N,) int64 dense user id of each interaction, 0-based.
        item: (N,) int64 dense item id of each interaction, 0-based.
        timestamp: (N,) float64 event times, or ``None`` when the source has none.
        rating: (N,) float64 explicit ratings, or ``None``.
        user_ids: (n_users,) raw user id (string) of each dense user id.
        item_ids: (n_items,) raw item id (string) of each dense item id.
        item_features: feature name -> list of length ``n_items`` (entry ``i``
            belongs to dense item ``i``; ``None`` where the side table had no
            entry). Typical names: ``text`` (str), ``categories`` / ``attributes``
            (list of str).
        name: Name of the data set, used in logs and results.
        report: Counts collected while reading (malformed side-table rows,
            unknown ids in side tables, rows removed by filters).
    """

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray | None
    rating: np.ndarray | None
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_features: dict[str, list[Any]] = field(default_factory=dict)
    name: str = "data"
    report: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.user)
        if len(self.item) != n:
            raise ValueError(f"user has {n} rows but item has {len(self.item)}")
        for key in ("timestamp", "rating"):
            arr = getattr(self, key)
            if arr is not None and len(arr) != n:
                raise ValueError(f"{key} has {len(arr)} rows, expected {n}")
        for key, values in self.item_features.items():
            if len(values) != self.n_items:
                raise ValueError(
                    f"item feature {key!r} has {len(values)} entries, "
                    f"expected one per item ({self.n_items})"
                )

    # ------------------------------------------------------------------
    # Sizes and id maps

    @property
    def n_users(self) -> int:
        """Number of users (dense ids are ``0 .. n_users - 1``)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items (dense ids are ``0 .. n_items - 1``)."""
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        """Number of interaction rows."""
        return len(self.user)

    @cached_property
    def user_index(self) -> dict[str, int]:
        """Raw user id -> dense user id."""
        return {str(u): i for i, u in enumerate(self.user_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        """Raw item id -> dense item id."""
        return {str(v): i for i, v in enumerate(self.item_ids)}

    @cached_property
    def offsets(self) -> np.ndarray:
        """(n_users + 1,) row offsets: user ``u`` owns rows ``off[u]:off[u + 1]``."""
        counts = np.bincount(self.user, minlength=self.n_users)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def sequence(self, user: int) -> np.ndarray:
        """Dense item ids of ``user`` in event order."""
        return self.item[self.offsets[user] : self.offsets[user + 1]]

    def sequences(self) -> list[np.ndarray]:
        """Every user's item sequence, indexed by dense user id."""
        off = self.offsets
        return [self.item[off[u] : off[u + 1]] for u in range(self.n_users)]

    def summary(self) -> dict[str, Any]:
        """Sizes and density, for logs and ``results.json``."""
        n = max(self.n_users * self.n_items, 1)
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": self.n_interactions / n,
            "avg_length": self.n_interactions / max(self.n_users, 1),
        }

    # ------------------------------------------------------------------
    # Construction

    @classmethod
    def from_raw(
        cls,
        users: Sequence[Any] | np.ndarray,
        items: Sequence[Any] | np.ndarray,
        timestamp: Sequence[float] | np.ndarray | None = None,
        rating: Sequence[float] | np.ndarray | None = None,
        item_features: Mapping[str, Mapping[str, Any]] | None = None,
        name: str = "data",
        report: dict[str, int] | None = None,
    ) -> InteractionData:
        """Build a dataset from raw ids, assigning dense ids by first appearance.

        Args:
            users: Raw user id per interaction.
            items: Raw item id per interaction.
            timestamp: Event time per interaction (optional).
            rating: Rating per interaction (optional).
            item_features: Feature name -> {raw item id -> value}. Entries for
                items that have no interaction are counted in ``report`` under
                ``"<feature>.unknown_ids"``; items without an entry get ``None``
                and are counted under ``"<feature>.missing"``.
            name: Data set name.
            report: Counts gathered by the reader, carried along.

        Returns:
            The dataset, rows in event order.
        """
        raw_users = np.asarray([str(u) for u in users], dtype=object)
        raw_items = np.asarray([str(v) for v in items], dtype=object)
        if len(raw_users) != len(raw_items):
            raise ValueError("users and items differ in length")
        user_ids, user = _densify(raw_users)
        item_ids, item = _densify(raw_items)
        ts = None if timestamp is None else np.asarray(timestamp, dtype=np.float64)
        rt = None if rating is None else np.asarray(rating, dtype=np.float64)
        report = dict(report or {})
        features = _align_features(item_ids, item_features or {}, report)
        data = cls(user, item, ts, rt, user_ids, item_ids, features, name, report)
        return data.sorted()

    def sorted(self) -> InteractionData:
        """Rows sorted by (user, timestamp), stable so file order breaks ties."""
        keys = [self.user] if self.timestamp is None else [self.timestamp, self.user]
        order = np.lexsort(keys)
        return self.take(order)

    def take(self, rows: np.ndarray) -> InteractionData:
        """Dataset of the given rows, ids kept (no re-densifying)."""
        return InteractionData(
            self.user[rows],
            self.item[rows],
            None if self.timestamp is None else self.timestamp[rows],
            None if self.rating is None else self.rating[rows],
            self.user_ids,
            self.item_ids,
            self.item_features,
            self.name,
            dict(self.report),
        )

    def subset(self, keep: np.ndarray) -> InteractionData:
        """Keep rows where ``keep`` is true and re-densify users and items.

        Users and items left without interactions disappear; dense ids are
        reassigned in increasing order of the old ones, so relative order and
        item-feature alignment are preserved.
        """
        rows = np.flatnonzero(keep)
        user_used = np.unique(self.user[rows])
        item_used = np.unique(self.item[rows])
        user_map = np.full(self.n_users, -1, dtype=np.int64)
        user_map[user_used] = np.arange(len(user_used))
        item_map = np.full(self.n_items, -1, dtype=np.int64)
        item_map[item_used] = np.arange(len(item_used))
        features = {k: [v[i] for i in item_used] for k, v in self.item_features.items()}
        return InteractionData(
            user_map[self.user[rows]],
            item_map[self.item[rows]],
            None if self.timestamp is None else self.timestamp[rows],
            None if self.rating is None else self.rating[rows],
            self.user_ids[user_used],
            self.item_ids[item_used],
            features,
            self.name,
            dict(self.report),
        )


def _densify(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids in order of first appearance: (id -> raw, dense per row)."""
    if len(raw) == 0:
        return np.asarray([], dtype=object), np.zeros(0, dtype=np.int64)
    uniq, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # old unique index by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return uniq[order], rank[inverse].astype(np.int64)


def _align_features(
    item_ids: np.ndarray,
    features: Mapping[str, Mapping[str, Any]],
    report: dict[str, int],
) -> dict[str, list[Any]]:
    """Turn raw-keyed side tables into lists aligned with dense item ids."""
    out: dict[str, list[Any]] = {}
    known = {str(v) for v in item_ids}
    for name, table in features.items():
        table = {str(k): v for k, v in table.items()}
        unknown = sum(1 for k in table if k not in known)
        values = [table.get(str(v)) for v in item_ids]
        missing = sum(1 for v in values if v is None)
        report[f"{name}.unknown_ids"] = report.get(f"{name}.unknown_ids", 0) + unknown
        report[f"{name}.missing"] = missing
        if unknown:
            log.info(
                "item feature %r: %d side-table ids have no interaction", name, unknown
            )
        if missing:
            log.info("item feature %r: %d items have no entry", name, missing)
        out[name] = values
    return out
