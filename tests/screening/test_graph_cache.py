"""Ligand featurisation (known answers) and the packed on-disk graph cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from tamis.screening.encoders.ligand import (
    LigandEncoder,
    PackedGraphs,
    collate_graphs,
    featurize,
)

SMILES = ["CCO", "c1ccccc1C(=O)[O-]", "[Na+]", "C#N", "C1CC1Br"]


def test_featurize_known_answer_acetate_like() -> None:
    # C(=O)[O-] on benzene: element index (C=1, O=3), degree, charge + 2,
    # aromatic, hybridisation (SP2 = 2, SP3 = 3), hydrogens, ring.
    g = featurize(Chem.MolFromSmiles("CC(=O)[O-]"))
    np.testing.assert_array_equal(
        g.atoms,
        [
            [1, 1, 2, 0, 3, 3, 0],
            [1, 3, 2, 0, 2, 0, 0],
            [3, 1, 2, 0, 2, 0, 0],
            [3, 1, 1, 0, 2, 0, 0],
        ],
    )
    # Bonds C-C (single), C=O (double, conjugated), C-O (single, conjugated),
    # each in both directions.
    np.testing.assert_array_equal(g.edges, [[0, 1, 1, 2, 1, 3], [1, 0, 2, 1, 3, 1]])
    np.testing.assert_array_equal(g.bonds[::2], [[0, 0, 0], [1, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(g.bonds[::2], g.bonds[1::2])
    # Unknown element (selenium is known; iron is not) maps to 0.
    assert featurize(Chem.MolFromSmiles("[Fe]")).atoms[0, 0] == 0
    assert featurize(Chem.MolFromSmiles("[Na+]")).edges.shape == (2, 0)


def _graphs() -> list:
    graphs = [featurize(Chem.MolFromSmiles(s)) for s in SMILES]
    mol = Chem.AddHs(Chem.MolFromSmiles("CCN"))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    graphs.insert(2, featurize(Chem.RemoveHs(mol), use_3d=True))
    assert graphs[2].lengths is not None
    return graphs


@pytest.mark.parametrize(("start", "stop"), [(0, 6), (1, 4), (2, 3), (3, 6)])
def test_packed_batches_equal_collated_graphs(start: int, stop: int) -> None:
    graphs = _graphs()
    packed = PackedGraphs.from_graphs(graphs)
    assert len(packed) == len(graphs)
    a, b = packed.batch(start, stop), collate_graphs(graphs[start:stop])
    for name in ("atoms", "edges", "bonds", "lengths", "has_length", "graph_index"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.n_graphs == b.n_graphs == stop - start
    enc = LigandEncoder(dim=16, layers=2)
    torch.testing.assert_close(enc(a), enc(b))


def test_graph_cache_round_trip_without_pickle(tmp_path: Path) -> None:
    packed = PackedGraphs.from_graphs(_graphs())
    path = packed.save(tmp_path / "lib.npz")
    again = PackedGraphs.load(path)
    for name in PackedGraphs.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(again, name), getattr(packed, name))
    np.savez(tmp_path / "other.npz", atoms=np.zeros(3))
    with pytest.raises(ValueError, match="not a graph cache"):
        PackedGraphs.load(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="empty range"):
        packed.batch(6, 6)
