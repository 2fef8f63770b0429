"""Top-k semantic neighbours by cosine similarity, with group exclusion.

Both item and user retrieval are the same operation: for every query vector,
the ``k`` most similar key vectors whose *group* differs from the query's group.
For items the group is the item itself (no self-match); for user prefixes it is
the user, so that a prefix never retrieves the same user's other prefixes. The
public SRA-CL code omits that filter, and a prefix's nearest neighbours are then
often the same user's longer prefixes, which contain the anchor's next item.

Small sets use an exact, chunked torch matmul; large ones use FAISS (an exact
flat inner-product index, or IVF above a size threshold). Rows with fewer than
``k`` admissible keys are padded with ``-1``.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

__all__ = ["topk_neighbours", "random_neighbours", "exact_topk", "faiss_topk"]

log = logging.getLogger(__name__)


def exact_topk(
    queries: np.ndarray,
    keys: np.ndarray,
    k: int,
    query_groups: np.ndarray,
    key_groups: np.ndarray,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product with same-group keys masked out.

    Args:
        queries: (Q, D) float vectors (unit norm for cosine).
        keys: (K, D) float vectors.
        k: Neighbours per query.
        query_groups: (Q,) int group of each query.
        key_groups: (K,) int group of each key.
        chunk: Queries per matmul block (bounds memory at chunk x K floats).

    Returns:
        ``(index, score)``, both (Q, k); index ``-1`` (score ``-inf``) where a
        query has fewer than k admissible keys.
    """
    keys_t = torch.from_numpy(np.ascontiguousarray(keys, dtype=np.float32))
    key_groups_t = torch.from_numpy(np.asarray(key_groups, dtype=np.int64))
    n_keys = keys_t.shape[0]
    kk = min(k, n_keys)
    index = np.full((len(queries), k), -1, dtype=np.int64)
    score = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for start in range(0, len(queries), chunk):
        q = torch.from_numpy(np.ascontiguousarray(queries[start : start + chunk]))
        q = q.float()
        sims = q @ keys_t.T  # (C, K)
        groups = torch.from_numpy(np.asarray(query_groups[start : start + chunk]))
        same = groups.long()[:, None] == key_groups_t[None, :]  # (C, K)
        sims.masked_fill_(same, float("-inf"))
        top, idx = sims.topk(kk, dim=1)  # (C, kk)
        idx[torch.isinf(top)] = -1
        index[start : start + len(q), :kk] = idx.numpy()
        score[start : start + len(q), :kk] = top.numpy()
    return index, score


def faiss_topk(
    queries: np.ndarray,
    keys: np.ndarray,
    k: int,
    query_groups: np.ndarray,
    key_groups: np.ndarray,
    ivf_threshold: int = 200_000,
    nprobe: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """FAISS top-k by inner product with same-group keys filtered out.

    FAISS has no per-query exclusion, so each query asks for ``k + m`` results,
    where ``m`` is the largest number of keys one group owns, and drops the
    same-group ones; this always leaves k admissible keys when they exist (for
    the exact flat index). An IVF index is used when there are at least
    ``ivf_threshold`` keys (approximate; rows left short are padded with -1).

    Args:
        queries: (Q, D) float vectors.
        keys: (K, D) float vectors.
        k: Neighbours per query.
        query_groups: (Q,) int group of each query.
        key_groups: (K,) int group of each key.
        ivf_threshold: Key count from which an IVF index replaces the flat one.
        nprobe: IVF lists searched per query.

    Returns:
        ``(index, score)``, both (Q, k), padded with ``-1`` / ``-inf``.
    """
    import faiss

    keys32 = np.ascontiguousarray(keys, dtype=np.float32)
    queries32 = np.ascontiguousarray(queries, dtype=np.float32)
    dim = keys32.shape[1]
    if len(keys32) >= ivf_threshold:
        nlist = int(4 * np.sqrt(len(keys32)))
        index = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT
        )
        index.train(keys32)
        index.nprobe = nprobe
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(keys32)

    # Over-fetch by the largest group, then drop same-group hits.
    key_groups = np.asarray(key_groups, dtype=np.int64)
    largest = int(np.bincount(key_groups - key_groups.min()).max())
    fetch = min(k + largest, len(keys32))
    scores, found = index.search(queries32, fetch)  # (Q, fetch)
    valid = found >= 0
    same = np.zeros_like(valid)
    same[valid] = (
        key_groups[found[valid]]
        == np.repeat(np.asarray(query_groups, dtype=np.int64), fetch).reshape(
            found.shape
        )[valid]
    )
    keep = valid & ~same
    out_idx = np.full((len(queries32), k), -1, dtype=np.int64)
    out_score = np.full((len(queries32), k), -np.inf, dtype=np.float32)
    # Stable partition keeps FAISS's descending order among admissible hits.
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # (Q, k)
    rows = np.arange(len(queries32))[:, None]
    take = keep[rows, order]
    out_idx[:, : order.shape[1]] = np.where(take, found[rows, order], -1)
    out_score[:, : order.shape[1]] = np.where(take, scores[rows, order], -np.inf)
    return out_idx, out_score


def topk_neighbours(
    queries: np.ndarray,
    keys: np.ndarray,
    k: int,
    query_groups: np.ndarray,
    key_groups: np.ndarray,
    method: str = "auto",
    faiss_threshold: int = 50_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k neighbours with same-group exclusion, exact or through FAISS.

    Args:
        queries: (Q, D) unit vectors.
        keys: (K, D) unit vectors.
        k: Neighbours per query.
        query_groups: (Q,) group of each query (a user id, or the item id).
        key_groups: (K,) group of each key.
        method: ``"exact"`` (torch), ``"faiss"`` or ``"auto"`` (FAISS when
            ``Q * K`` exceeds ``faiss_threshold ** 2``).
        faiss_threshold: Size from which ``auto`` switches to FAISS.

    Returns:
        ``(index, score)``, both (Q, k), padded with ``-1`` / ``-inf``.

    Raises:
        ValueError: On an unknown method or mismatched shapes.
    """
    if method not in ("auto", "exact", "faiss"):
        raise ValueError(f"retrieval method must be auto|exact|faiss, got {method!r}")
    if queries.ndim != 2 or keys.ndim != 2 or queries.shape[1] != keys.shape[1]:
        raise ValueError(
            f"queries {queries.shape} and keys {keys.shape} must be (Q, D) and (K, D)"
        )
    if len(query_groups) != len(queries) or len(key_groups) != len(keys):
        raise ValueError("one group per query and one per key are required")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    use_faiss = method == "faiss" or (
        method == "auto" and len(queries) * len(keys) > faiss_threshold**2
    )
    log.info(
        "retrieval: %d queries x %d keys, k=%d, %s",
        len(queries),
        len(keys),
        k,
        "faiss" if use_faiss else "exact torch",
    )
    if use_faiss:
        return faiss_topk(queries, keys, k, query_groups, key_groups)
    return exact_topk(queries, keys, k, query_groups, key_groups)


def random_neighbours(
    query_groups: np.ndarray, key_groups: np.ndarray, k: int, seed: int = 0
) -> np.ndarray:
    """k uniformly random keys of another group per query (an ablation).

    Args:
        query_groups: (Q,) group of each query.
        key_groups: (K,) group of each key.
        k: Neighbours per query.
        seed: NumPy seed.

    Returns:
        (Q, k) key indices; each differs in group from its query.
    """
    rng = np.random.default_rng(seed)
    query_groups = np.asarray(query_groups)
    key_groups = np.asarray(key_groups)
    out = rng.integers(0, len(key_groups), size=(len(query_groups), k))
    for _ in range(100):  # redraw the few same-group picks
        bad = key_groups[out] == query_groups[:, None]
        if not bad.any():
            return out
        out[bad] = rng.integers(0, len(key_groups), size=int(bad.sum()))
    out[key_groups[out] == query_groups[:, None]] = -1
    return out
