"""The collaborative-information study of one dataset, end to end.

:func:`run_study` builds the co-occurrence graph from the training sequences,
counts item pairs by shortest-path length (all pairs, or a sampled estimate),
the co-occurrence multiplicity tail and shortest-path redundancy, types every
test sample, and breaks down any number of models' predictions by relation
type. All BFS work is bounded by the hop cap and batched; no n x n array is
built.

Reference: X. Zhang et al., "Have We Really Understood Collaborative
Information? An Empirical Investigation", arXiv:2511.06905 (WSDM 2026).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tamis.core.config import param
from tamis.recsys.analysis.bfs import (
    UNREACHED,
    BitsetBFS,
    distance_pass,
    pair_histogram,
    shortest_path_counts,
)
from tamis.recsys.analysis.breakdown import relation_shares, stratified_accuracy
from tamis.recsys.analysis.graph import (
    cooccurrence_graph,
    multiplicity_histogram,
    training_items,
)
from tamis.recsys.analysis.relations import (
    flatten_input_pairs,
    relation_labels,
    type_samples,
)

__all__ = ["CollabData", "ModelPredictions", "StudySettings", "run_study"]

log = logging.getLogger(__name__)


@dataclass
class CollabData:
    """Training sequences and test samples of one dataset, dense 0-based ids.

    Attributes:
        name: Dataset name.
        n_items: Number of item ids.
        train: Training sequences (original, not prefix-augmented).
        test_inputs: Input sequence of each test sample.
        test_targets: (N,) target item of each test sample.
    """

    name: str
    n_items: int
    train: list[np.ndarray]
    test_inputs: list[np.ndarray]
    test_targets: np.ndarray

    @classmethod
    def from_split(cls, split: Any, name: str | None = None) -> CollabData:
        """From a :class:`tamis.recsys.data.SequentialSplit` (its test samples)."""
        test = split.test
        inputs = [test.history(i) for i in range(len(test))]
        return cls(
            name or split.data.name,
            int(split.n_items),
            [np.asarray(s, dtype=np.int64) for s in split.train],
            inputs,
            np.asarray(test.targets, dtype=np.int64),
        )

    @classmethod
    def leave_last_out(
        cls, sequences: Sequence[np.ndarray], n_items: int, name: str
    ) -> CollabData:
        """Last item is the test target, second to last is held out for
        validation, the rest trains; sequences shorter than 3 only train."""
        train, inputs, targets = [], [], []
        for seq in sequences:
            seq = np.asarray(seq, dtype=np.int64)
            if seq.size < 3:
                train.append(seq)
                continue
            train.append(seq[:-2])
            inputs.append(seq[:-1])
            targets.append(seq[-1])
        return cls(name, n_items, train, inputs, np.asarray(targets, dtype=np.int64))


@dataclass
class ModelPredictions:
    """One model's test predictions, aligned with the test samples.

    Attributes:
        name: Model name shown in tables.
        ranks: (N,) 1-based full-ranking rank of each target.
        topk: (N, K) recommended item ids, best first (-1 pads short lists).
    """

    name: str
    ranks: np.ndarray
    topk: np.ndarray


@dataclass
class StudySettings:
    """Knobs of the collaborative-information study."""

    max_hops: int = param(6, "hop cap H on the shortest-path length d", ge=1, le=30)
    window: int | None = param(
        None, "null: clique per sequence; w: only pairs <= w positions apart", ge=1
    )
    ks: list[int] = param(help="cut-offs K of HR/NDCG/MRR", factory=lambda: [10, 20])
    share_k: int = param(10, "list length of the relation-share breakdown", ge=1)
    pair_sources: int = param(
        0, "BFS sources of the pair histogram; 0 = all items (exact)", ge=0
    )
    max_samples: int = param(0, "test samples typed; 0 = all", ge=0)
    redundancy_sources: int = param(
        256, "test targets whose shortest paths are counted", ge=0
    )
    batch_size: int = param(2048, "BFS sources per batch", ge=64)
    seed: int = param(0, "seed of every sample drawn by the study")


@dataclass
class _Timer:
    seconds: dict[str, float] = field(default_factory=dict)

    def lap(self, name: str, start: float) -> float:
        now = time.perf_counter()
        self.seconds[name] = round(now - start, 3)
        return now


def _multiplicity_summary(hist: dict[int, int]) -> dict[str, Any]:
    """Counts of pairs co-occurring once, twice, ... and tail statistics."""
    values = np.array(list(hist.keys()), dtype=np.int64)
    counts = np.array(list(hist.values()), dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return {"histogram": {}, "pairs": 0}
    return {
        "histogram": {str(k): v for k, v in hist.items()},
        "pairs": total,
        "once": hist.get(1, 0),
        "twice": hist.get(2, 0),
        "three_times": hist.get(3, 0),
        "share_once": hist.get(1, 0) / total,
        "mean": float((values * counts).sum() / total),
        "max": int(values.max()),
    }


def _redundancy(
    adjacency: Any,
    targets: np.ndarray,
    sample: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    settings: StudySettings,
    show_progress: bool | None,
) -> dict[str, Any]:
    """Number of shortest paths of (input item, target) pairs, per distance."""
    rng = np.random.default_rng(settings.seed + 1)
    uniq = np.unique(targets)
    if uniq.size == 0 or settings.redundancy_sources == 0:
        return {}
    chosen = rng.choice(uniq, size=min(settings.redundancy_sources, uniq.size))
    keep = np.isin(y, chosen) & (x != y)
    dist, paths = shortest_path_counts(
        adjacency, y[keep], x[keep], settings.max_hops, show_progress=show_progress
    )
    weights = np.asarray(adjacency[x[keep], y[keep]]).ravel()
    out: dict[str, Any] = {"n_targets": int(chosen.size)}
    for d in range(1, settings.max_hops + 1):
        sel = dist == d
        if not sel.any():
            continue
        row = {
            "pairs": int(sel.sum()),
            "mean_paths": float(paths[sel].mean()),
            "median_paths": float(np.median(paths[sel])),
            "p90_paths": float(np.quantile(paths[sel], 0.9)),
            "max_paths": float(paths[sel].max()),
        }
        if d == 1:
            row["mean_cooccurrence"] = float(weights[sel].mean())
        out[f"d={d}"] = row
    return out


def _query_distances(
    engine: BitsetBFS,
    adjacency: Any,
    known: np.ndarray,
    queries: list[tuple[np.ndarray, np.ndarray]],
    typing_groups: np.ndarray,
    settings: StudySettings,
    all_sources: np.ndarray | None,
    show_progress: bool | None,
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Distances of the query pairs; with ``all_sources`` also the histogram.

    The first query types test samples: its pairs are grouped by sample and
    only resolved up to each sample's minimum distance.
    """
    trimmed = [(s[known[s]], d[known[s]]) for s, d in queries]
    groups = [typing_groups[known[queries[0][0]]]] + [None] * (len(queries) - 1)
    sources = all_sources
    if sources is None:
        parts = [s for s, _ in trimmed]
        sources = np.unique(np.concatenate(parts)) if parts else np.empty(0, int)
    result = distance_pass(
        adjacency,
        sources,
        settings.max_hops,
        trimmed,
        settings.batch_size,
        engine,
        show_progress,
        groups=groups,
        count_histogram=all_sources is not None,
    )
    out = []
    for (src, dst), dist in zip(queries, result.distances, strict=True):
        full = np.full(src.size, UNREACHED, dtype=np.int8)
        full[known[src]] = dist
        full[src == dst] = 0
        out.append(full)
    return out, result.histogram if all_sources is not None else None


def run_study(
    data: CollabData,
    settings: StudySettings | None = None,
    models: Sequence[ModelPredictions] = (),
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Run the whole study on one dataset.

    Args:
        data: Training sequences and test samples.
        settings: Study knobs (defaults when ``None``).
        models: Predictions to break down, aligned with ``data``'s test samples.
        show_progress: Progress bar switch (``None`` follows the process).

    Returns:
        A JSON-ready dict: ``dataset``, ``settings``, ``labels``,
        ``pair_histogram``, ``multiplicity``, ``redundancy``, ``test_typing``,
        ``models`` and ``seconds`` (wall time per stage).

    Raises:
        ValueError: If a model's predictions do not match the test samples.
    """
    s = settings or StudySettings()
    timer = _Timer()
    start = t0 = time.perf_counter()
    labels = relation_labels(s.max_hops)
    n_test = len(data.test_inputs)
    for m in models:
        if len(m.ranks) != n_test or len(m.topk) != n_test:
            raise ValueError(
                f"model {m.name!r}: {len(m.ranks)} ranks and {len(m.topk)} lists "
                f"for {n_test} test samples"
            )

    # Graph and the items it covers.
    adjacency = cooccurrence_graph(data.train, data.n_items, s.window, show_progress)
    known = training_items(data.train, data.n_items)
    items = np.flatnonzero(known)
    engine = BitsetBFS(adjacency)
    t0 = timer.lap("graph", t0)

    # Test samples to type (optionally a seeded subsample).
    chosen = np.arange(n_test)
    if s.max_samples and s.max_samples < n_test:
        rng = np.random.default_rng(s.seed)
        chosen = np.sort(rng.choice(n_test, size=s.max_samples, replace=False))
    inputs = [data.test_inputs[i] for i in chosen]
    targets = data.test_targets[chosen]
    sample, x, y, _ = flatten_input_pairs(inputs, targets)
    queries = [(y, x)]
    flats = []
    for m in models:
        topk = np.asarray(m.topk, dtype=np.int64)[chosen, : s.share_k]
        flat = flatten_input_pairs(inputs, topk)
        ok = flat[2] >= 0  # drop padding slots
        flats.append(tuple(a[ok] for a in flat))
        queries.append((flats[-1][2], flats[-1][1]))

    # Distances: one pass from every item when the histogram is exact.
    exact = s.pair_sources == 0 or s.pair_sources >= items.size
    dists, ordered = _query_distances(
        engine,
        adjacency,
        known,
        queries,
        sample,
        s,
        items if exact else None,
        show_progress,
    )
    if exact:
        total = items.size * (items.size - 1) // 2
        pairs = {d: int(c) // 2 for d, c in enumerate(ordered[1:], start=1)}
        hist = {
            "pairs": pairs,
            "beyond": total - sum(pairs.values()),
            "total": total,
            "exact": True,
            "n_sources": int(items.size),
        }
    else:
        hist = pair_histogram(
            adjacency,
            items,
            s.max_hops,
            s.pair_sources,
            s.seed,
            s.batch_size,
            engine,
            show_progress,
        )
    hist["pairs"] = {str(d): c for d, c in hist["pairs"].items()}
    t0 = timer.lap("bfs", t0)

    # Test typing and subsets.
    types = type_samples(len(chosen), sample, dists[0], targets, known, s.max_hops)
    counts = types.counts()
    subsets = types.subsets()
    typed = len(chosen) - counts["repeat"] - counts["cold"]
    typing = {
        "n_samples": int(len(chosen)),
        "counts": counts,
        "pure_counts": {k: int(v.sum()) for k, v in subsets.items() if "pure" in k},
        "share_0hop": counts[labels[1]] / max(len(chosen), 1),
        "share_0hop_of_typed": counts[labels[1]] / max(typed, 1),
        "direct": int(subsets["direct"].sum()),
        "no_direct": int(subsets["no-direct"].sum()),
    }
    redundancy = _redundancy(adjacency, targets, sample, x, y, s, show_progress)
    t0 = timer.lap("typing", t0)

    # Model breakdowns.
    breakdowns = {}
    for m, flat, dist in zip(models, flats, dists[1:], strict=True):
        shares = relation_shares(
            flat[0], flat[2], dist, known, labels, s.max_hops, list_slot=flat[3]
        )
        ranks = np.asarray(m.ranks)[chosen]
        acc = stratified_accuracy(ranks, subsets, s.ks)
        breakdowns[m.name] = {"shares": shares, "accuracy": acc}
    timer.lap("models", t0)
    timer.seconds["total"] = round(time.perf_counter() - start, 3)

    return {
        "dataset": {
            "name": data.name,
            "n_items": int(data.n_items),
            "n_training_items": int(items.size),
            "n_train_sequences": len(data.train),
            "n_train_interactions": int(sum(len(q) for q in data.train)),
            "n_test_samples": int(n_test),
            "n_edges": int(adjacency.nnz // 2),
        },
        "settings": asdict(s),
        "labels": labels,
        "pair_histogram": hist,
        "multiplicity": _multiplicity_summary(multiplicity_histogram(adjacency)),
        "redundancy": redundancy,
        "test_typing": typing,
        "models": breakdowns,
        "seconds": timer.seconds,
    }
