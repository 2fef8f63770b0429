"""Generated sequences with planted co-occurrence structure (tests, demo, scale).

Items are split into latent clusters. Each sequence picks a home cluster and
draws each of its items from it, except that with probability ``cross_rate`` an
item comes from another cluster. At ``cross_rate = 0`` clusters never co-occur,
so pairs across clusters are unconnected; as the rate rises, cross-cluster
edges appear and shortest paths shrink. Item popularity inside a cluster can
follow a power law, as in real logs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["planted_cluster_sequences"]


def _cluster_tables(
    n_items: int, n_clusters: int, exponent: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items of each cluster (padded), cluster sizes and cumulative weights."""
    size = -(-n_items // n_clusters)
    table = np.arange(n_clusters * size).reshape(size, n_clusters).T  # (C, size)
    sizes = (table < n_items).sum(axis=1)  # (C,)
    cumulative = np.cumsum((np.arange(size) + 1.0) ** -exponent)  # rank^-s
    return table, sizes, cumulative


def planted_cluster_sequences(
    n_items: int = 200,
    n_clusters: int = 4,
    n_sequences: int = 300,
    min_len: int = 3,
    max_len: int = 8,
    cross_rate: float = 0.05,
    popularity_exponent: float = 0.0,
    seed: int = 0,
) -> list[np.ndarray]:
    """Sequences whose items mostly stay inside one latent cluster.

    Item i belongs to cluster ``i % n_clusters``.

    Args:
        n_items: Number of items.
        n_clusters: Number of clusters (at least 1, at most ``n_items``).
        n_sequences: Number of sequences.
        min_len: Shortest sequence.
        max_len: Longest sequence.
        cross_rate: Probability that an item is drawn from another cluster.
        popularity_exponent: s of the within-cluster popularity r^-s (0: uniform).
        seed: Random seed.

    Returns:
        ``n_sequences`` int64 arrays of item ids in ``[0, n_items)``.

    Raises:
        ValueError: On an impossible setting.
    """
    if not 1 <= n_clusters <= n_items:
        raise ValueError(f"n_clusters must be in [1, n_items], got {n_clusters}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    if not 0.0 <= cross_rate <= 1.0:
        raise ValueError(f"cross_rate must be in [0, 1], got {cross_rate}")
    rng = np.random.default_rng(seed)
    table, sizes, cumulative = _cluster_tables(n_items, n_clusters, popularity_exponent)

    # One cluster per position: the home cluster, or another one at cross_rate.
    lengths = rng.integers(min_len, max_len + 1, size=n_sequences)
    home = np.repeat(rng.integers(n_clusters, size=n_sequences), lengths)
    cluster = home.copy()
    if n_clusters > 1:
        cross = rng.random(home.size) < cross_rate
        shift = rng.integers(1, n_clusters, size=int(cross.sum()))
        cluster[cross] = (home[cross] + shift) % n_clusters

    # An item of that cluster by its popularity.
    mass = cumulative[sizes[cluster] - 1] * rng.random(home.size)
    slot = np.searchsorted(cumulative, mass, side="right")
    slot = np.minimum(slot, sizes[cluster] - 1)
    items = table[cluster, slot].astype(np.int64)
    return np.split(items, np.cumsum(lengths)[:-1])
