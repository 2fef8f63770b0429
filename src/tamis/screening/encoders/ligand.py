"""Ligand encoder: a message-passing network over RDKit molecular graphs.

Uni-Mol weights are not available offline, so the ligand tower is a small
graph network: categorical atom and bond features, edge messages that include
a radial-basis expansion of the 3D bond length when the molecule has a
conformer (zero otherwise: 2D graphs for large libraries, where conformer
generation would cost about 0.25 s per molecule), residual updates, and mean
pooling over atoms (S²Drug pools the ligand tower by the mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rdkit import Chem
from torch import nn

__all__ = [
    "LigandGraph",
    "LigandBatch",
    "featurize",
    "collate_graphs",
    "rbf",
    "LigandEncoder",
    "ATOM_VOCAB",
]

_ELEMENTS = [6, 7, 8, 9, 15, 16, 17, 35, 53, 5, 14, 34]
_HYBRID = [
    Chem.HybridizationType.SP,
    Chem.HybridizationType.SP2,
    Chem.HybridizationType.SP3,
    Chem.HybridizationType.SP3D,
    Chem.HybridizationType.SP3D2,
]
#: Vocabulary size of each categorical atom feature (index 0 = other/unknown).
ATOM_VOCAB = (len(_ELEMENTS) + 1, 7, 5, 2, len(_HYBRID) + 1, 5, 2)
_BOND = {
    Chem.BondType.SINGLE: 0,
    Chem.BondType.DOUBLE: 1,
    Chem.BondType.TRIPLE: 2,
    Chem.BondType.AROMATIC: 3,
}
BOND_VOCAB = (5, 2, 2)
_ELEMENT_INDEX = {z: i + 1 for i, z in enumerate(_ELEMENTS)}
_HYBRID_INDEX = {h: i + 1 for i, h in enumerate(_HYBRID)}


@dataclass
class LigandGraph:
    """One molecule as arrays.

    Attributes:
        atoms: (A, 7) int categorical atom features.
        edges: (2, E) directed edges (both directions of every bond).
        bonds: (E, 3) int categorical bond features.
        lengths: (E,) bond lengths in Angstrom, or None for a 2D graph.
    """

    atoms: np.ndarray
    edges: np.ndarray
    bonds: np.ndarray
    lengths: np.ndarray | None


def featurize(mol: Chem.Mol, use_3d: bool = True) -> LigandGraph:
    """Atom and bond features of an RDKit molecule (hydrogens implicit).

    Args:
        mol: The molecule.
        use_3d: Use bond lengths from the molecule's conformer when it has one.
    """
    atoms = np.empty((mol.GetNumAtoms(), len(ATOM_VOCAB)), dtype=np.int64)
    for i, a in enumerate(mol.GetAtoms()):
        atoms[i] = (
            _ELEMENT_INDEX.get(a.GetAtomicNum(), 0),
            min(a.GetDegree(), 6),
            min(max(a.GetFormalCharge() + 2, 0), 4),
            int(a.GetIsAromatic()),
            _HYBRID_INDEX.get(a.GetHybridization(), 0),
            min(a.GetTotalNumHs(), 4),
            int(a.IsInRing()),
        )
    n_b = mol.GetNumBonds()
    edges = np.empty((2, 2 * n_b), dtype=np.int64)
    bonds = np.empty((2 * n_b, len(BOND_VOCAB)), dtype=np.int64)
    for j, b in enumerate(mol.GetBonds()):
        u, v = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        feat = (
            _BOND.get(b.GetBondType(), 4),
            int(b.GetIsConjugated()),
            int(b.IsInRing()),
        )
        edges[:, 2 * j], edges[:, 2 * j + 1] = (u, v), (v, u)
        bonds[2 * j] = bonds[2 * j + 1] = feat
    lengths = None
    if use_3d and mol.GetNumConformers() > 0 and n_b > 0:
        pos = mol.GetConformer().GetPositions()
        if np.abs(pos[:, 2]).max() > 1e-3:  # a flat 2D depiction is not 3D
            lengths = np.linalg.norm(pos[edges[0]] - pos[edges[1]], axis=1)
    return LigandGraph(atoms, edges, bonds, lengths)


@dataclass
class LigandBatch:
    """Graphs stacked into one disconnected graph.

    Attributes:
        atoms: (N, 7) atom features of all molecules.
        edges: (2, E) edges with global atom indices.
        bonds: (E, 3) bond features.
        lengths: (E,) bond lengths (0 where unknown).
        has_length: (E,) 1.0 where a 3D length is known.
        graph_index: (N,) molecule index of each atom.
        n_graphs: Number of molecules B.
    """

    atoms: torch.Tensor
    edges: torch.Tensor
    bonds: torch.Tensor
    lengths: torch.Tensor
    has_length: torch.Tensor
    graph_index: torch.Tensor
    n_graphs: int

    def to(self, device: torch.device | str) -> LigandBatch:
        """Move every tensor to ``device``."""
        return LigandBatch(
            self.atoms.to(device),
            self.edges.to(device),
            self.bonds.to(device),
            self.lengths.to(device),
            self.has_length.to(device),
            self.graph_index.to(device),
            self.n_graphs,
        )


def collate_graphs(graphs: Sequence[LigandGraph]) -> LigandBatch:
    """Stack graphs into a :class:`LigandBatch`."""
    if not graphs:
        raise ValueError("collate_graphs: empty list of graphs")
    sizes = np.array([g.atoms.shape[0] for g in graphs])
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    edges = np.concatenate(
        [g.edges + o for g, o in zip(graphs, offsets, strict=True)], axis=1
    )
    lengths = np.concatenate(
        [
            g.lengths if g.lengths is not None else np.zeros(g.edges.shape[1])
            for g in graphs
        ]
    )
    known = np.concatenate(
        [np.full(g.edges.shape[1], float(g.lengths is not None)) for g in graphs]
    )
    return LigandBatch(
        torch.from_numpy(np.concatenate([g.atoms for g in graphs])),
        torch.from_numpy(edges),
        torch.from_numpy(np.concatenate([g.bonds for g in graphs])),
        torch.from_numpy(lengths).float(),
        torch.from_numpy(known).float(),
        torch.from_numpy(np.repeat(np.arange(len(graphs)), sizes)),
        len(graphs),
    )


def rbf(d: torch.Tensor, n: int = 16, d_max: float = 8.0) -> torch.Tensor:
    """Gaussian radial basis expansion of distances.

    Args:
        d: (...,) distances in Angstrom.
        n: Number of centres spread evenly over [0, d_max].
        d_max: Largest centre.

    Returns:
        (..., n) features.
    """
    centres = torch.linspace(0.0, d_max, n, device=d.device, dtype=d.dtype)
    width = d_max / (n - 1)
    return torch.exp(-(((d[..., None] - centres) / width) ** 2))


class _MessageLayer(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.message = nn.Sequential(nn.Linear(2 * dim, dim), nn.SiLU())
        self.update = nn.Sequential(
            nn.Linear(2 * dim, dim), nn.SiLU(), nn.Linear(dim, dim)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, h: torch.Tensor, edges: torch.Tensor, e: torch.Tensor
    ) -> torch.Tensor:
        src, dst = edges
        m = self.message(torch.cat([h[src], e], dim=-1))  # (E, D)
        agg = torch.zeros_like(h).index_add_(0, dst, m)  # (N, D)
        return self.norm(h + self.update(torch.cat([h, agg], dim=-1)))


class LigandEncoder(nn.Module):
    """Graph network over ligand graphs, mean-pooled to one vector per molecule.

    Args:
        dim: Hidden width.
        layers: Message-passing layers.
        n_rbf: Radial basis functions for 3D bond lengths.
    """

    def __init__(self, dim: int = 128, layers: int = 4, n_rbf: int = 16) -> None:
        super().__init__()
        self.dim = dim
        self.atom_embed = nn.ModuleList(nn.Embedding(v, dim) for v in ATOM_VOCAB)
        self.bond_embed = nn.ModuleList(nn.Embedding(v, dim) for v in BOND_VOCAB)
        self.n_rbf = n_rbf
        self.length_proj = nn.Linear(n_rbf, dim)
        self.layers = nn.ModuleList(_MessageLayer(dim) for _ in range(layers))

    def atom_states(self, batch: LigandBatch) -> torch.Tensor:
        """(N, D) atom representations after message passing."""
        h = sum(emb(batch.atoms[:, i]) for i, emb in enumerate(self.atom_embed))
        e = sum(emb(batch.bonds[:, i]) for i, emb in enumerate(self.bond_embed))
        geo = rbf(batch.lengths, self.n_rbf, 4.0) * batch.has_length[:, None]
        e = e + self.length_proj(geo)  # (E, D)
        for layer in self.layers:
            h = layer(h, batch.edges, e)
        return h

    def forward(self, batch: LigandBatch) -> torch.Tensor:
        """(B, D) mean-pooled molecule embeddings."""
        h = self.atom_states(batch)
        sums = torch.zeros(batch.n_graphs, self.dim, device=h.device, dtype=h.dtype)
        sums.index_add_(0, batch.graph_index, h)
        counts = torch.bincount(batch.graph_index, minlength=batch.n_graphs)
        return sums / counts.clamp(min=1)[:, None].to(h.dtype)
