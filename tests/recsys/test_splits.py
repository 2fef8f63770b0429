"""Splits: known answers and the no-leak guarantee."""

from __future__ import annotations

import numpy as np
import pytest

from tamis.recsys.data import (
    InteractionData,
    leave_one_out,
    left_pad,
    planted_sequences,
    ratio_split,
    temporal_split,
)


def _unique_positions(n_users: int = 30, seed: int = 0) -> InteractionData:
    """Every interaction has its own item, so an item identifies a position."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    item = 0
    for u in range(n_users):
        for _ in range(int(rng.integers(1, 9))):
            users.append(f"u{u}")
            items.append(f"i{item}")
            times.append(float(rng.integers(0, 1000)))
            item += 1
    return InteractionData.from_raw(users, items, times)


def test_left_pad_convention() -> None:
    flat = np.array([4, 5, 6, 7])
    out = left_pad(flat, np.array([0, 1]), np.array([2, 4]), 3)
    assert out.tolist() == [[0, 5, 6], [6, 7, 8]]


def test_leave_one_out_known_answer() -> None:
    data = InteractionData.from_raw(["a"] * 5 + ["b"] * 2, list("pqrst") + list("pq"))
    split = leave_one_out(data)
    assert split.train[0].tolist() == [0, 1, 2]
    assert split.train[1].tolist() == [0, 1]  # too short to evaluate
    assert split.valid.targets.tolist() == [3]
    assert split.valid.history(0).tolist() == [0, 1, 2]
    assert split.test.targets.tolist() == [4]
    assert split.test.history(0).tolist() == [0, 1, 2, 3]
    samples = split.training_samples()
    assert samples.targets.tolist() == [1, 2, 1]
    assert [samples.prefix(s).tolist() for s in range(3)] == [[0], [0, 1], [0]]
    padded = samples.padded(2)
    assert padded.tolist() == [[0, 1], [1, 2], [0, 1]]
    assert len(split.training_samples(min_prefix=0)) == 5


@pytest.mark.parametrize("how", ["loo", "ratio", "temporal"])
def test_no_validation_or_test_item_leaks_into_training(how: str) -> None:
    data = _unique_positions()
    if how == "loo":
        split = leave_one_out(data)
    elif how == "ratio":
        split = ratio_split(data, (0.6, 0.2, 0.2))
    else:
        split = temporal_split(data, 0.2, 0.2)
    held_out = set(split.valid.targets.tolist()) | set(split.test.targets.tolist())
    assert held_out, "the split must hold something out"
    for min_prefix in (0, 1):
        samples = split.training_samples(min_prefix)
        inputs = samples.padded(50)
        seen = set((inputs[inputs > 0] - 1).tolist()) | set(samples.targets.tolist())
        assert not seen & held_out
    assert not set(split.train_flat.tolist()) & held_out
    assert not set(split.train_matrix().indices.tolist()) & held_out


def test_eval_history_is_everything_before_the_target() -> None:
    data = _unique_positions(seed=3)
    split = ratio_split(data, (0.5, 0.25, 0.25))
    for part in (split.valid, split.test):
        for i in range(len(part)):
            seq = data.sequence(part.users[i]).tolist()
            pos = seq.index(part.targets[i])
            assert part.history(i).tolist() == seq[:pos]


def test_temporal_split_respects_the_global_cut() -> None:
    data = _unique_positions(seed=5)
    split = temporal_split(data, 0.2, 0.2)
    time_of = {int(i): t for i, t in zip(data.item, data.timestamp, strict=True)}
    last_train = max(time_of[i] for i in split.train_flat.tolist())
    first_test = min(time_of[i] for i in split.test.targets.tolist())
    assert last_train < first_test
    with pytest.raises(ValueError, match="needs timestamps"):
        temporal_split(InteractionData.from_raw(["a"], ["b"]))


def test_ratio_validation() -> None:
    with pytest.raises(ValueError, match="ratios"):
        ratio_split(planted_sequences(5, 5), (0.5, 0.5, 0.5))
