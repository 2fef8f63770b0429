"""The offline semantic pipeline of SRA-CL (arXiv:2503.04162), cached on disk.

Steps, each cached under ``<cache_dir>/<fingerprint>/`` so that a second call
with the same data and settings loads instead of recomputing:

1. item texts from side information -> item vectors with a sentence encoder;
2. one description per training prefix (an LLM preference summary, or the
   LLM-free template of its recent item texts) -> prefix vectors; prefix
   vectors are encoded in chunks that are saved as they finish (resumable), and
   LLM summaries go through the generation cache (resumable too). A cheaper
   LLM-free mode, ``item-mean``, averages the prefix's recent item vectors;
3. retrieval: top-k items per item (self excluded) and top-k training prefixes
   per training prefix, excluding the same user's prefixes by default.

The retrieval pool is the training prefixes only, so no validation or test item
ever enters a positive.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tamis.core.config import param
from tamis.core.io import atomic_write, atomic_write_json
from tamis.core.progress import progress
from tamis.recsys.semantic.retrieval import random_neighbours, topk_neighbours
from tamis.recsys.semantic.texts import (
    SUMMARY_SYSTEM,
    item_texts,
    item_titles,
    summary_prompt,
    template_summary,
)

__all__ = [
    "GenerationConfig",
    "SemanticsConfig",
    "Semantics",
    "build_semantics",
    "prefix_item_lists",
    "preserved_rng",
    "semantics_for_split",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class GenerationConfig:
    """Where LLM preference summaries come from (``summary: llm`` only)."""

    backend: str = param(
        "transformers",
        "transformers (local model) or openai (OpenAI-compatible endpoint)",
        choices=("transformers", "openai"),
    )
    model: str = param(
        "",
        "local model dir/.gguf (empty: packaged SmolLM2-135M-Instruct) or the "
        "served model name for openai",
    )
    base_url: str = param("", "endpoint root for openai, e.g. http://host:8000/v1")
    api_key_env: str = param("OPENAI_API_KEY", "environment variable with the key")
    max_new_tokens: int = param(128, "tokens per summary", ge=1)
    temperature: float = param(0.0, "0 = greedy", ge=0)
    top_p: float = param(1.0, "nucleus mass", gt=0, le=1)
    words: int = param(100, "word limit asked for in the prompt", ge=5)
    batch_size: int = param(8, "prompts per local generate call", ge=1)
    concurrency: int = param(8, "requests in flight (openai)", ge=1)
    max_retries: int = param(4, "retries per request (openai)", ge=0)
    timeout: float = param(60.0, "seconds per request (openai)", gt=0)


@dataclass
class SemanticsConfig:
    """Settings of the semantic pipeline and of retrieval."""

    cache_dir: str = param("runs/semantics", "folder of the on-disk caches")
    encoder: str = param(
        "minilm",
        "sentence encoder: minilm (packaged), a local sentence-transformers "
        "directory, or tfidf[:dim] (TF-IDF + truncated SVD, no neural model)",
    )
    encoder_batch_size: int = param(64, "texts per encoder batch", ge=1)
    encoder_max_tokens: int = param(
        0, "truncate encoder inputs to this many tokens (0 = the model's limit)", ge=0
    )
    device: str = param(
        "auto", "encoder and generator device", choices=("auto", "cpu", "cuda")
    )
    item_fields: list[str] = param(
        factory=list, help="item features that form item text (empty: all)"
    )
    summary: str = param(
        "template",
        "user description: template (LLM-free, recent item texts) or llm",
        choices=("template", "llm"),
    )
    prefix_embedding: str = param(
        "text",
        "text: encode each prefix description; item-mean: mean of the prefix's "
        "recent item vectors (LLM-free, no encoder pass per prefix)",
        choices=("text", "item-mean"),
    )
    summary_items: int = param(10, "most recent items used to describe a prefix", ge=1)
    generation: GenerationConfig = param(
        factory=GenerationConfig, help="LLM settings (summary: llm)"
    )
    k: int = param(10, "neighbour prefixes per training prefix", ge=1)
    item_k: int = param(10, "neighbour items per item", ge=1)
    neighbours: str = param(
        "semantic",
        "semantic retrieval, or random (ablation)",
        choices=("semantic", "random"),
    )
    exclude_same_user: bool = param(
        True, "never retrieve the same user's other prefixes (off = public code)"
    )
    retrieval: str = param(
        "auto",
        "exact (torch), faiss, or auto by size",
        choices=("auto", "exact", "faiss"),
    )
    faiss_threshold: int = param(50_000, "auto uses FAISS above this size", ge=1)
    chunk_size: int = param(4096, "prefixes encoded between two cache writes", ge=1)
    seed: int = param(0, "seed of the random-neighbour ablation")

    def validate(self) -> None:
        """Reject combinations that cannot work."""
        if self.summary == "llm" and self.prefix_embedding != "text":
            raise ValueError(
                "semantics.prefix_embedding: LLM summaries must be encoded as text "
                f"(got {self.prefix_embedding!r} with summary: llm)"
            )


@dataclass
class Semantics:
    """Vectors and neighbour tables that SRA-CL trains with.

    Attributes:
        item_vectors: (n_items, Ds) unit vectors, dense item order.
        prefix_vectors: (S, Ds) unit vectors, one per training sample.
        item_neighbours: (n_items, item_k) dense item ids, -1 = none.
        prefix_neighbours: (S, k) training-sample indices, -1 = none.
        prefix_users: (S,) dense user id of each training sample.
        info: Provenance: encoder, summary mode, sizes, cache folder.
    """

    item_vectors: np.ndarray
    prefix_vectors: np.ndarray
    item_neighbours: np.ndarray
    prefix_neighbours: np.ndarray
    prefix_users: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    ARRAYS = (
        "item_vectors",
        "prefix_vectors",
        "item_neighbours",
        "prefix_neighbours",
        "prefix_users",
    )

    def save(self, folder: Path) -> None:
        """Write ``semantics.safetensors`` and ``semantics.json`` atomically."""
        from safetensors.numpy import save_file

        arrays = {
            name: np.ascontiguousarray(getattr(self, name)) for name in self.ARRAYS
        }
        atomic_write(folder / "semantics.safetensors", lambda p: save_file(arrays, p))
        atomic_write_json(folder / "semantics.json", self.info)

    @classmethod
    def load(cls, folder: Path) -> Semantics:
        """Read what :meth:`save` wrote."""
        from safetensors.numpy import load_file

        arrays = load_file(folder / "semantics.safetensors")
        info = json.loads((folder / "semantics.json").read_text(encoding="utf-8"))
        return cls(**{name: arrays[name] for name in cls.ARRAYS}, info=info)

    def same_user_share(self) -> float:
        """Share of prefix neighbours that belong to the anchor's own user."""
        valid = self.prefix_neighbours >= 0
        if not valid.any():
            return 0.0
        owners = self.prefix_users[np.where(valid, self.prefix_neighbours, 0)]
        same = (owners == self.prefix_users[:, None]) & valid
        return float(same.sum() / valid.sum())


def prefix_item_lists(
    users: np.ndarray,
    lengths: np.ndarray,
    flat: np.ndarray,
    user_offsets: np.ndarray,
    last: int,
) -> list[np.ndarray]:
    """The last ``last`` items of every training prefix (dense ids, oldest first).

    Args:
        users: (S,) user of each sample.
        lengths: (S,) prefix length of each sample.
        flat: (T,) concatenated training items.
        user_offsets: (n_users + 1,) offsets into ``flat``.
        last: How many recent items to keep.
    """
    starts = user_offsets[users]
    ends = starts + lengths
    return [flat[max(s, e - last) : e] for s, e in zip(starts, ends, strict=True)]


def _fingerprint(parts: dict[str, Any], arrays: list[np.ndarray]) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    for arr in arrays:
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()[:16]


def _encoder(config: SemanticsConfig) -> Any:
    from tamis.text.embed import SentenceEncoder, TfidfSvdEncoder

    if config.encoder.startswith("tfidf"):
        _, _, dim = config.encoder.partition(":")
        return TfidfSvdEncoder(int(dim or 64), seed=config.seed)

    return SentenceEncoder(
        config.encoder,
        device=config.device,
        batch_size=config.encoder_batch_size,
        max_length=config.encoder_max_tokens or None,
    )


def _encode_chunked(
    texts: list[str], encoder: Any, folder: Path, chunk: int, name: str
) -> np.ndarray:
    """Encode ``texts`` chunk by chunk; finished chunks are reused after a crash."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    starts = range(0, len(texts), chunk)
    for start in progress(starts, desc=f"encode {name}", total=len(starts)):
        path = folder / f"{name}-{start:09d}.npy"
        if path.is_file():
            parts.append(np.load(path, allow_pickle=False))
            continue
        vectors = encoder.encode(texts[start : start + chunk])
        atomic_write(path, lambda p, v=vectors: _save_npy(p, v))
        parts.append(vectors)
    dim = parts[0].shape[1] if parts else 0
    return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)


def _save_npy(path: Path, array: np.ndarray) -> None:
    # Through a handle: np.save would append ".npy" to a temporary name.
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def _llm_summaries(
    lists: list[np.ndarray], titles: list[str], config: SemanticsConfig, cache: Path
) -> list[str]:
    from tamis.text.generate import (
        CachedGenerator,
        GenerationCache,
        GenerationParams,
        build_generator,
    )

    gen = config.generation
    backend = build_generator(
        gen.backend,
        model=gen.model or None,
        base_url=gen.base_url or None,
        device=config.device,
        batch_size=gen.batch_size,
        concurrency=gen.concurrency,
        max_retries=gen.max_retries,
        timeout=gen.timeout,
        api_key_env=gen.api_key_env or None,
    )
    generator = CachedGenerator(backend, GenerationCache(cache / "generations.jsonl"))
    params = GenerationParams(
        max_new_tokens=gen.max_new_tokens,
        temperature=gen.temperature,
        top_p=gen.top_p,
        system=SUMMARY_SYSTEM,
    )
    prompts = [
        summary_prompt([titles[i] for i in items], words=gen.words) for items in lists
    ]
    outputs = generator.generate(prompts, params)
    log.info("summaries: %d cached, %d generated", generator.hits, generator.misses)
    return outputs


def build_semantics(
    item_features: dict[str, list[Any]],
    item_ids: np.ndarray,
    users: np.ndarray,
    lengths: np.ndarray,
    flat: np.ndarray,
    user_offsets: np.ndarray,
    config: SemanticsConfig,
    encoder: Any | None = None,
) -> Semantics:
    """Run (or load from cache) the semantic pipeline for training samples.

    The arguments mirror :class:`tamis.recsys.data.splits.TrainingSamples`:
    sample ``s`` is user ``users[s]``'s first ``lengths[s]`` training items.

    Args:
        item_features: Feature name -> one value per item.
        item_ids: (n_items,) raw item ids.
        users: (S,) user of each training sample.
        lengths: (S,) prefix length of each sample.
        flat: (T,) concatenated training items (dense ids).
        user_offsets: (n_users + 1,) offsets into ``flat``.
        config: Pipeline settings.
        encoder: A ready encoder with ``encode(texts) -> (N, D)`` and ``name``
            (default: built from ``config.encoder``).

    Returns:
        The semantics, also saved under ``config.cache_dir``.
    """
    texts = item_texts(item_features, list(item_ids), config.item_fields or None)
    lists = prefix_item_lists(users, lengths, flat, user_offsets, config.summary_items)
    settings = asdict(config)
    for key in (
        "cache_dir",
        "device",
        "encoder_batch_size",
        "chunk_size",
        "generation",
    ):
        settings.pop(key)
    if config.summary == "llm":  # generation settings change the summaries
        settings["generation"] = asdict(config.generation)
    settings["version"] = FORMAT_VERSION
    fingerprint = _fingerprint(
        {"settings": settings, "texts": texts},
        [np.asarray(users), np.asarray(lengths), np.asarray(flat)],
    )
    root = Path(config.cache_dir)
    folder = root / fingerprint
    if (folder / "semantics.json").is_file():
        log.info("semantics: loading cache %s", folder)
        return Semantics.load(folder)
    log.info("semantics: building into %s (%d prefixes)", folder, len(users))
    encoder = encoder or _encoder(config)

    # 1. Item vectors.
    item_vectors = _encode_chunked(texts, encoder, folder, config.chunk_size, "items")

    # 2. Prefix descriptions and vectors.
    if config.prefix_embedding == "item-mean":
        prefix_vectors = _item_mean(lists, item_vectors)
    else:
        if config.summary == "llm":
            descriptions = _llm_summaries(lists, item_titles(texts), config, root)
        else:
            descriptions = [
                template_summary([texts[i] for i in items]) for items in lists
            ]
        prefix_vectors = _encode_chunked(
            descriptions, encoder, folder, config.chunk_size, "prefixes"
        )

    # 3. Retrieval: items exclude themselves, prefixes their own user.
    item_nb, _ = topk_neighbours(
        item_vectors,
        item_vectors,
        config.item_k,
        np.arange(len(texts)),
        np.arange(len(texts)),
        config.retrieval,
        config.faiss_threshold,
    )
    groups = np.asarray(users) if config.exclude_same_user else np.arange(len(users))
    if config.neighbours == "random":
        prefix_nb = random_neighbours(groups, groups, config.k, config.seed)
    else:
        prefix_nb, _ = topk_neighbours(
            prefix_vectors,
            prefix_vectors,
            config.k,
            groups,
            groups,
            config.retrieval,
            config.faiss_threshold,
        )

    info = {
        "fingerprint": fingerprint,
        "folder": str(folder),
        "encoder": getattr(encoder, "name", str(config.encoder)),
        "dim": int(item_vectors.shape[1]),
        "summary": config.summary,
        "summary_source": _summary_source(config),
        "prefix_embedding": config.prefix_embedding,
        "neighbours": config.neighbours,
        "exclude_same_user": config.exclude_same_user,
        "n_items": len(texts),
        "n_prefixes": len(users),
        "k": config.k,
        "item_k": config.item_k,
    }
    semantics = Semantics(
        item_vectors,
        prefix_vectors.astype(np.float32),
        item_nb,
        prefix_nb,
        np.asarray(users, dtype=np.int64),
        info,
    )
    semantics.info["same_user_neighbour_share"] = semantics.same_user_share()
    semantics.save(folder)
    return semantics


def _item_mean(lists: list[np.ndarray], item_vectors: np.ndarray) -> np.ndarray:
    """Unit-norm mean of each prefix's recent item vectors, (S, Ds)."""
    import scipy.sparse as sp

    from tamis.text.embed import l2_normalise

    lengths = np.asarray([len(x) for x in lists], dtype=np.int64)
    cols = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    weights = np.repeat(1.0 / np.maximum(lengths, 1), lengths)
    mean = sp.csr_matrix(
        (weights, cols, indptr), shape=(len(lists), item_vectors.shape[0])
    )  # (S, n_items) row-stochastic over each prefix's recent items
    sums = mean @ item_vectors.astype(np.float64)  # (S, Ds)
    return l2_normalise(sums)


def _summary_source(config: SemanticsConfig) -> str:
    if config.prefix_embedding == "item-mean":
        return "LLM-free: mean of the recent item-text vectors"
    if config.summary == "template":
        return "LLM-free: template of the recent item texts"
    gen = config.generation
    if gen.backend == "openai":
        return f"LLM: {gen.model} at {gen.base_url}"
    return f"LLM: local {gen.model or 'SmolLM2-135M-Instruct (packaged GGUF)'}"


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python, NumPy and torch (CPU) random states after the block.

    Loading an encoder initialises weights from the global generators; a run
    must draw the same numbers whether its semantics came from the cache or not.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(py_state)
    np.random.set_state(np_state)


def semantics_for_split(split: Any, config: SemanticsConfig) -> Semantics:
    """Semantics of ``split.training_samples()`` (the retrieval pool).

    Args:
        split: A :class:`~tamis.recsys.data.splits.SequentialSplit`.
        config: Pipeline settings.

    Returns:
        Semantics aligned with the training-sample indices of the split.
    """
    samples = split.training_samples()
    data = split.data
    with preserved_rng():
        return build_semantics(
            data.item_features,
            np.asarray(data.item_ids),
            samples.users,
            samples.lengths,
            samples.flat,
            samples.user_offsets,
            config,
        )
