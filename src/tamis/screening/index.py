"""A FAISS inner-product index of ligand embeddings, screened against many pockets.

Embeddings are L2-normalised, so inner product equals cosine similarity. The
library is encoded once; each pocket is one exact (``IndexFlatIP``) search.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tamis.core.io import atomic_write, atomic_write_json

__all__ = ["LigandIndex"]


class LigandIndex:
    """Ligand embeddings with their names and SMILES in a FAISS index.

    Args:
        dim: Embedding width.
    """

    def __init__(self, dim: int) -> None:
        import faiss

        self.dim = dim
        self.index = faiss.IndexFlatIP(dim)
        self.names: list[str] = []
        self.smiles: list[str] = []

    def add(self, embeddings: np.ndarray, names: list[str], smiles: list[str]) -> None:
        """Append (N, dim) embeddings with their identifiers."""
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ValueError(f"embeddings: expected (N, {self.dim}), got {emb.shape}")
        if not len(names) == len(smiles) == len(emb):
            raise ValueError("names, smiles and embeddings differ in length")
        self.index.add(emb)
        self.names += list(names)
        self.smiles += list(smiles)

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, pockets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ligands per pocket.

        Args:
            pockets: (P, dim) normalised pocket embeddings.
            k: Hits per pocket.

        Returns:
            ``(scores (P, k), indices (P, k))``.
        """
        q = np.ascontiguousarray(np.atleast_2d(pockets), dtype=np.float32)
        return self.index.search(q, min(k, len(self)))

    def score_all(self, pockets: np.ndarray) -> np.ndarray:
        """(P, N) cosine of every pocket with every ligand (exact)."""
        import faiss

        q = np.ascontiguousarray(np.atleast_2d(pockets), dtype=np.float32)
        base = faiss.rev_swig_ptr(self.index.get_xb(), len(self) * self.dim)
        return q @ np.asarray(base).reshape(len(self), self.dim).T

    def save(self, folder: str | Path) -> Path:
        """Write ``ligands.faiss`` and ``ligands.json`` (names, SMILES) atomically."""
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(
            folder / "ligands.faiss", lambda p: faiss.write_index(self.index, str(p))
        )
        atomic_write_json(
            folder / "ligands.json",
            {"dim": self.dim, "names": self.names, "smiles": self.smiles},
        )
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> LigandIndex:
        """Read an index written by :meth:`save`."""
        import faiss

        folder = Path(folder)
        for name in ("ligands.faiss", "ligands.json"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder}: {name} missing (not an index?)")
        meta = json.loads((folder / "ligands.json").read_text())
        out = cls(int(meta["dim"]))
        out.index = faiss.read_index(str(folder / "ligands.faiss"))
        out.names, out.smiles = meta["names"], meta["smiles"]
        if len(out.names) != len(out):
            raise ValueError(
                f"{folder}: ligands.json lists {len(out.names)} names "
                f"but the index holds {len(out)} vectors"
            )
        return out
