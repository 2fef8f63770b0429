"""Train / validation / test splits with leak-free training samples.

A :class:`SequentialSplit` stores, per user, the items at *training positions*
(in event order) and two sets of evaluation samples. Training samples are the
prefixes of the training positions only, so no validation or test item can
appear in a training input or target.

Padding convention for model inputs (``padded``): item id ``i`` is written as
``i + 1`` and ``0`` is padding; sequences are **left**-padded to length ``L`` so
that the most recent item is always at position ``L - 1``; longer histories
keep their last ``L`` items. Targets are plain 0-based item ids.

Splits:

* :func:`leave_one_out`: last item test, second to last validation, the rest
  training (users with fewer than 3 interactions only train).
* :func:`ratio_split`: per user, the first ``ratios[0]`` share trains, the next
  ``ratios[1]`` validates, the rest tests.
* :func:`temporal_split`: one global cut in time; interactions before the
  validation cut train.

In every split an evaluation sample's history is all of that user's earlier
interactions (training ones and, for test samples, earlier held-out ones).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from tamis.recsys.data.dataset import InteractionData

__all__ = [
    "EvalSamples",
    "TrainingSamples",
    "SequentialSplit",
    "leave_one_out",
    "ratio_split",
    "temporal_split",
    "make_split",
    "left_pad",
]

log = logging.getLogger(__name__)


def left_pad(
    flat: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int
) -> np.ndarray:
    """Left-padded windows ``flat[starts:ends]`` (last ``max_len`` kept), ids + 1.

    Args:
        flat: (T,) concatenated item ids, 0-based.
        starts: (N,) first index of each window's sequence in ``flat``.
        ends: (N,) one past the last index of each window.
        max_len: Output width ``L``.

    Returns:
        (N, L) int64 array; 0 is padding, item ``i`` appears as ``i + 1``.
    """
    cols = np.arange(-max_len, 0, dtype=np.int64)  # (L,)
    idx = ends[:, None] + cols[None, :]  # (N, L) index into flat
    valid = idx >= starts[:, None]
    out = np.where(valid, flat[np.clip(idx, 0, max(len(flat) - 1, 0))] + 1, 0)
    return out.astype(np.int64)


@dataclass
class EvalSamples:
    """Evaluation samples: predict ``targets[i]`` for ``users[i]`` after a history.

    Attributes:
        users: (N,) dense user ids.
        targets: (N,) dense item ids to rank.
        history_items: (T,) concatenated histories, event order.
        history_offsets: (N + 1,) sample ``i``'s history is
            ``history_items[history_offsets[i]:history_offsets[i + 1]]``.
    """

    users: np.ndarray
    targets: np.ndarray
    history_items: np.ndarray
    history_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    def history(self, i: int) -> np.ndarray:
        """Sample ``i``'s history (dense item ids, event order)."""
        return self.history_items[self.history_offsets[i] : self.history_offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        """(N,) history lengths."""
        return np.diff(self.history_offsets)

    def padded(self, max_len: int) -> np.ndarray:
        """(N, L) left-padded histories with ids + 1 (see module docstring)."""
        return left_pad(
            self.history_items,
            self.history_offsets[:-1],
            self.history_offsets[1:],
            max_len,
        )

    def history_matrix(self, n_items: int) -> sp.csr_matrix:
        """(N, n_items) binary CSR matrix of each sample's history items."""
        data = np.ones(len(self.history_items), dtype=np.float32)
        mat = sp.csr_matrix(
            (data, self.history_items, self.history_offsets), shape=(len(self), n_items)
        )
        mat.sum_duplicates()
        mat.data[:] = 1.0
        return mat


@dataclass
class TrainingSamples:
    """Next-item training samples drawn from training positions only.

    Sample ``s`` asks to predict ``targets[s]`` for ``users[s]`` from the first
    ``lengths[s]`` training items of that user.

    Attributes:
        users: (S,) dense user ids.
        lengths: (S,) prefix lengths (number of input items).
        targets: (S,) dense item ids.
        flat: (T,) all users' training items concatenated.
        user_offsets: (n_users + 1,) user ``u``'s training items are
            ``flat[user_offsets[u]:user_offsets[u + 1]]``.
    """

    users: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray
    flat: np.ndarray
    user_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    def prefix(self, s: int) -> np.ndarray:
        """Input items of sample ``s``."""
        start = self.user_offsets[self.users[s]]
        return self.flat[start : start + self.lengths[s]]

    def padded(self, max_len: int) -> np.ndarray:
        """(S, L) left-padded prefixes with ids + 1 (see module docstring)."""
        starts = self.user_offsets[self.users]
        return left_pad(self.flat, starts, starts + self.lengths, max_len)


@dataclass
class SequentialSplit:
    """A split of an :class:`InteractionData` into training positions and samples.

    Attributes:
        data: The dataset.
        train: Per user (dense id), training items in event order.
        valid: Validation samples.
        test: Test samples.
        method: Name of the split rule.
    """

    data: InteractionData
    train: list[np.ndarray]
    valid: EvalSamples
    test: EvalSamples
    method: str = "leave-one-out"
    _cache: dict[int, TrainingSamples] = field(default_factory=dict, repr=False)

    @property
    def n_users(self) -> int:
        """Number of users."""
        return self.data.n_users

    @property
    def n_items(self) -> int:
        """Number of items."""
        return self.data.n_items

    @cached_property
    def train_offsets(self) -> np.ndarray:
        """(n_users + 1,) offsets of :attr:`train_flat`."""
        lens = np.asarray([len(s) for s in self.train], dtype=np.int64)
        return np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)

    @cached_property
    def train_flat(self) -> np.ndarray:
        """(T,) all training items, users in order."""
        if not self.train:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(self.train).astype(np.int64)

    def training_samples(self, min_prefix: int = 1) -> TrainingSamples:
        """All (user, prefix, next item) samples of the training positions.

        Args:
            min_prefix: Shortest prefix; 1 for sequential models, 0 to also
                include each user's first training item with an empty history
                (for user-based models such as BPR-MF).
        """
        if min_prefix not in self._cache:
            lens = np.diff(self.train_offsets)
            counts = np.maximum(lens - min_prefix, 0)
            users = np.repeat(np.arange(self.n_users, dtype=np.int64), counts)
            # Prefix length of each sample: min_prefix, min_prefix + 1, ...
            first = np.concatenate([[0], np.cumsum(counts)])[:-1]
            lengths = np.arange(counts.sum(), dtype=np.int64) - np.repeat(first, counts)
            lengths += min_prefix
            targets = self.train_flat[self.train_offsets[users] + lengths]
            self._cache[min_prefix] = TrainingSamples(
                users, lengths, targets, self.train_flat, self.train_offsets
            )
        return self._cache[min_prefix]

    def train_matrix(self) -> sp.csr_matrix:
        """(n_users, n_items) binary user-item matrix of training interactions."""
        mat = sp.csr_matrix(
            (
                np.ones(len(self.train_flat), dtype=np.float32),
                self.train_flat,
                self.train_offsets,
            ),
            shape=(self.n_users, self.n_items),
        )
        mat.sum_duplicates()
        mat.data[:] = 1.0
        return mat

    def summary(self) -> dict[str, int | str]:
        """Sizes of the parts."""
        return {
            "method": self.method,
            "train_interactions": int(len(self.train_flat)),
            "valid_samples": len(self.valid),
            "test_samples": len(self.test),
        }


def _eval_samples(data: InteractionData, rows: np.ndarray) -> EvalSamples:
    """Samples for held-out ``rows``: history = the user's earlier rows."""
    rows = np.sort(rows)
    users = data.user[rows]
    starts = data.offsets[users]
    lens = rows - starts
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    idx = np.repeat(starts - offsets[:-1], lens) + np.arange(offsets[-1])
    return EvalSamples(users, data.item[rows], data.item[idx], offsets)


def _from_labels(
    data: InteractionData, label: np.ndarray, method: str
) -> SequentialSplit:
    """Build a split from a per-row label (0 train, 1 valid, 2 test)."""
    off = data.offsets
    train = [
        data.item[off[u] : off[u + 1]][label[off[u] : off[u + 1]] == 0]
        for u in range(data.n_users)
    ]
    valid = _eval_samples(data, np.flatnonzero(label == 1))
    test = _eval_samples(data, np.flatnonzero(label == 2))
    return SequentialSplit(data, train, valid, test, method)


def leave_one_out(data: InteractionData) -> SequentialSplit:
    """Last interaction of each user tests, the one before validates.

    Users with fewer than three interactions keep all of them for training.
    """
    off = data.offsets
    lens = np.diff(off)
    label = np.zeros(data.n_interactions, dtype=np.int8)
    has_eval = lens >= 3
    label[off[1:][has_eval] - 1] = 2
    label[off[1:][has_eval] - 2] = 1
    short = int((~has_eval).sum())
    if short:
        log.info("leave-one-out: %d users with < 3 interactions only train", short)
    return _from_labels(data, label, "leave-one-out")


def ratio_split(
    data: InteractionData, ratios: tuple[float, float, float]
) -> SequentialSplit:
    """Per-user chronological split by ``(train, valid, test)`` shares.

    Each user keeps at least one training interaction; the validation and test
    counts are ``round(n * share)``.
    """
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"ratios: got {list(ratios)}, expected 3 shares summing to 1")
    off = data.offsets
    lens = np.diff(off)
    n_test = np.round(lens * ratios[2]).astype(np.int64)
    n_valid = np.round(lens * ratios[1]).astype(np.int64)
    n_test = np.minimum(n_test, np.maximum(lens - 1, 0))
    n_valid = np.minimum(n_valid, np.maximum(lens - 1 - n_test, 0))
    pos = np.arange(data.n_interactions) - np.repeat(off[:-1], lens)  # index in user
    from_end = np.repeat(lens, lens) - pos  # 1 for the last item
    n_test_r, n_valid_r = np.repeat(n_test, lens), np.repeat(n_valid, lens)
    label = np.zeros(data.n_interactions, dtype=np.int8)
    label[from_end <= n_test_r + n_valid_r] = 1
    label[from_end <= n_test_r] = 2
    return _from_labels(data, label, "ratio")


def temporal_split(
    data: InteractionData, valid_share: float = 0.1, test_share: float = 0.1
) -> SequentialSplit:
    """One global time cut: the latest ``test_share`` of interactions test.

    The cut points are quantiles of the timestamps; interactions at or after the
    test cut test, those at or after the validation cut validate, the rest train.
    """
    if data.timestamp is None:
        raise ValueError(f"{data.name}: a temporal split needs timestamps")
    if valid_share < 0 or test_share <= 0 or valid_share + test_share >= 1:
        raise ValueError(
            f"temporal split shares: got valid {valid_share}, test {test_share}; "
            "expected test > 0 and valid + test < 1"
        )
    t_valid = np.quantile(data.timestamp, 1.0 - valid_share - test_share)
    t_test = np.quantile(data.timestamp, 1.0 - test_share)
    label = np.zeros(data.n_interactions, dtype=np.int8)
    label[data.timestamp >= t_valid] = 1
    label[data.timestamp >= t_test] = 2
    if not (label == 0).any():
        raise ValueError(f"{data.name}: the temporal cut left no training data")
    return _from_labels(data, label, "temporal")


def make_split(
    data: InteractionData,
    method: str = "leave-one-out",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> SequentialSplit:
    """Dispatch on the split name (``leave-one-out``, ``ratio``, ``temporal``)."""
    if method == "leave-one-out":
        return leave_one_out(data)
    if method == "ratio":
        return ratio_split(data, ratios)
    if method == "temporal":
        return temporal_split(data, ratios[1], ratios[2])
    raise ValueError(
        f"split: got {method!r}, expected leave-one-out, ratio or temporal"
    )
