"""Generated interaction data with a planted sequential pattern (tests, demo)."""

from __future__ import annotations

import numpy as np

from tamis.recsys.data.dataset import InteractionData

__all__ = ["planted_sequences"]


def planted_sequences(
    n_users: int = 200,
    n_items: int = 50,
    min_len: int = 5,
    max_len: int = 15,
    follow: float = 0.9,
    n_categories: int = 5,
    seed: int = 0,
) -> InteractionData:
    """Sequences where item ``i`` is followed by ``i + 1`` with probability ``follow``.

    Items are arranged on a ring; each user starts at a random item and steps
    to the next item on the ring with probability ``follow``, otherwise jumps
    to a uniformly random item. A sequential model should therefore learn
    "next = last + 1". Each item belongs to category ``i * n_categories //
    n_items`` (feature ``categories``) and has a short ``text``.

    Returns:
        A dataset with raw ids ``u<k>`` / ``i<k>`` and integer timestamps.
    """
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    clock = 0
    for u in range(n_users):
        length = int(rng.integers(min_len, max_len + 1))
        cur = int(rng.integers(n_items))
        for _ in range(length):
            users.append(f"u{u}")
            items.append(f"i{cur}")
            times.append(clock)
            clock += 1
            if rng.random() < follow:
                cur = (cur + 1) % n_items
            else:
                cur = int(rng.integers(n_items))
    cats = {f"i{i}": [f"c{i * n_categories // n_items}"] for i in range(n_items)}
    text = {
        f"i{i}": f"item {i} of category {i * n_categories // n_items}"
        for i in range(n_items)
    }
    return InteractionData.from_raw(
        users, items, times, None, {"categories": cats, "text": text}, name="planted"
    )
