"""Ligand index: exact top-k equals brute force for every backend and storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tamis.screening.index import LigandIndex, blocked_topk


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(q: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = q @ x.T  # (P, N)
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, idx, 1), idx


def test_blocked_topk_merges_blocks_exactly() -> None:
    rng = np.random.default_rng(0)
    x, q = _unit(rng, 1000, 16), _unit(rng, 7, 16)
    # Blocks of 64 rows (not a divisor of 1000) and k larger than one block.
    v, i = blocked_topk(torch.from_numpy(q), torch.from_numpy(x), 100, block=64)
    bv, bi = _brute(q, x, 100)
    np.testing.assert_array_equal(i.numpy(), bi)
    np.testing.assert_allclose(v.numpy(), bv, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("backend", "factory"), [("torch", "Flat"), ("faiss", "Flat"), ("auto", "Flat")]
)
def test_exact_backends_equal_brute_force(backend: str, factory: str) -> None:
    rng = np.random.default_rng(1)
    x, q = _unit(rng, 3000, 32), _unit(rng, 5, 32)
    index = LigandIndex(32, backend, faiss_factory=factory, block=500)
    # Added in two parts: the index keeps global row numbers.
    index.add(x[:1200], [f"m{i}" for i in range(1200)], ["C"] * 1200)
    index.add(x[1200:], [f"m{i}" for i in range(1200, 3000)], ["C"] * 1800)
    v, i = index.search(q, 50)
    bv, bi = _brute(q, x, 50)
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_allclose(v, bv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(index.score_all(q), q @ x.T, rtol=1e-5, atol=1e-6)
    assert index.backend == ("faiss" if backend == "faiss" else "torch")


def test_ivf_with_every_list_probed_is_exact() -> None:
    rng = np.random.default_rng(2)
    x, q = _unit(rng, 2000, 16), _unit(rng, 4, 16)
    index = LigandIndex(16, faiss_factory="IVF8,Flat", nprobe=8)
    assert index.backend == "faiss"
    index.add(x, ["m"] * 2000, ["C"] * 2000)
    _, i = index.search(q, 20)
    np.testing.assert_array_equal(i, _brute(q, x, 20)[1])


@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_half_storage_keeps_the_ranking(storage: str) -> None:
    # 16-bit storage rounds each vector; with float32 accumulation the top
    # ranks of well-separated scores stay those of float32.
    rng = np.random.default_rng(3)
    x, q = _unit(rng, 4000, 64), _unit(rng, 3, 64)
    half = LigandIndex(64, "torch", storage)
    half.add(x, ["m"] * 4000, ["C"] * 4000)
    v, i = half.search(q, 100)
    bv, bi = _brute(q, x, 100)
    tol = 2e-3 if storage == "float16" else 1.6e-2
    np.testing.assert_allclose(v, bv, atol=tol)
    for row in range(3):
        # Same members of the top 100 except at near-ties around the cut.
        assert len(set(i[row]) & set(bi[row])) >= 95
        gaps = np.diff(bv[row][:20])
        if np.all(np.abs(gaps) > 2 * tol):
            np.testing.assert_array_equal(i[row][:20], bi[row][:20])
    assert half.vectors.dtype == getattr(torch, storage)


@pytest.mark.parametrize(
    ("backend", "storage", "factory"),
    [
        ("torch", "float32", "Flat"),
        ("torch", "bfloat16", "Flat"),
        ("faiss", "float32", "Flat"),
        ("faiss", "float32", "IVF4,Flat"),
    ],
)
def test_saved_index_gives_identical_results(
    tmp_path: Path, backend: str, storage: str, factory: str
) -> None:
    rng = np.random.default_rng(4)
    x, q = _unit(rng, 600, 16), _unit(rng, 3, 16)
    index = LigandIndex(16, backend, storage, faiss_factory=factory, nprobe=2)
    index.add(x, [f"m{i}" for i in range(600)], [f"C{i}" for i in range(600)])
    index.save(tmp_path / "idx")
    files = sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert not any(f.endswith((".pkl", ".pt", ".pickle")) for f in files)
    again = LigandIndex.load(tmp_path / "idx")
    assert (again.backend, again.storage, again.nprobe) == (backend, storage, 2)
    assert again.names == index.names and again.smiles == index.smiles
    for a, b in zip(index.search(q, 10), again.search(q, 10), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="storage"):
        LigandIndex(8, storage="int8")
    with pytest.raises(ValueError, match="backend"):
        LigandIndex(8, backend="annoy")
    with pytest.raises(ValueError, match="needs backend='faiss'"):
        LigandIndex(8, backend="torch", faiss_factory="IVF4,Flat")
    with pytest.raises(ValueError, match=r"expected \(P, 8\)"):
        idx = LigandIndex(8)
        idx.add(np.eye(8, dtype=np.float32), ["a"] * 8, ["C"] * 8)
        idx.search(np.ones((1, 4), np.float32), 2)
