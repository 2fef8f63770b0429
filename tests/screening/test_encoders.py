"""Encoders: invariances, gate limits, ESM2 tokens, binding-site head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from tamis.screening.encoders.gate import ResidueGate, gate_fuse
from tamis.screening.encoders.ligand import LigandEncoder, collate_graphs, featurize
from tamis.screening.encoders.pocket import PocketEncoder
from tamis.screening.encoders.protein import ESM_VOCAB, ProteinEncoder, tokenize
from tamis.screening.model import site_probabilities


def _rotation(seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(
        torch.randn(3, 3, generator=torch.Generator().manual_seed(seed))
    )
    return q


def test_pocket_encoder_is_e3_invariant() -> None:
    torch.manual_seed(0)
    enc = PocketEncoder(dim=16, layers=2, heads=2).eval()
    aa = torch.randint(1, 21, (2, 7))
    xyz = torch.randn(2, 7, 3) * 5
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    moved = xyz @ _rotation(1).T + torch.tensor([3.0, -1.0, 8.0])
    a, b = enc(aa, xyz, mask), enc(aa, moved, mask)
    torch.testing.assert_close(a[mask], b[mask], atol=1e-4, rtol=1e-4)


def test_ligand_encoder_permutation_invariant_and_uses_3d() -> None:
    torch.manual_seed(0)
    enc = LigandEncoder(dim=16, layers=2).eval()
    mol = Chem.MolFromSmiles("OC(=O)c1ccc(Cl)cc1")
    perm = list(np.random.default_rng(0).permutation(mol.GetNumAtoms()))
    shuffled = Chem.RenumberAtoms(mol, [int(i) for i in perm])
    e1 = enc(collate_graphs([featurize(mol)]))
    e2 = enc(collate_graphs([featurize(shuffled)]))
    torch.testing.assert_close(e1, e2, atol=1e-5, rtol=1e-5)
    # A 3D conformer changes the edge features; a 2D graph has none.
    mol3d = Chem.AddHs(mol)
    AllChem.EmbedMolecule(mol3d, randomSeed=0)
    mol3d = Chem.RemoveHs(mol3d)
    g3 = featurize(mol3d, use_3d=True)
    assert g3.lengths is not None and 1.0 < g3.lengths.min() < g3.lengths.max() < 2.0
    assert featurize(mol3d, use_3d=False).lengths is None
    batch = collate_graphs([featurize(mol), g3])
    assert batch.has_length.sum() == g3.edges.shape[1]
    assert enc(batch).shape == (2, 16)


def test_gate_limits() -> None:
    s, g = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    fused, beta = gate_fuse(s, g, torch.full((2, 5), 50.0))
    torch.testing.assert_close(fused, s)
    fused, beta = gate_fuse(s, g, torch.zeros(2, 5))
    torch.testing.assert_close(fused, 0.5 * (s + g))
    assert torch.all(beta == 0.5)
    gate = ResidueGate(4, 6, 8, mode="structure")
    x_s, x_g = torch.randn(1, 3, 4), torch.randn(1, 3, 6)
    fused, beta = gate(x_s, x_g)
    torch.testing.assert_close(fused, gate.w_g(x_g), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="fusion mode"):
        ResidueGate(4, 4, 4, mode="mean")


def test_esm_tokens_match_esm2_vocabulary() -> None:
    assert len(ESM_VOCAB) == 33 and ESM_VOCAB.index("L") == 4
    assert ESM_VOCAB.index("<mask>") == 32
    tokens = tokenize(["LA", "C"])
    assert tokens.tolist() == [[0, 4, 5, 2], [0, 23, 2, 1]]
    enc = ProteinEncoder(layers=1, hidden=16, heads=2, ffn=32)
    feats = enc(tokens)
    assert feats.shape == (2, 4, 16)
    pooled = enc.mean_pool(feats, tokens)
    torch.testing.assert_close(pooled[1], feats[1, 1])
    assert enc.esm.config.position_embedding_type == "rotary"


def test_site_probabilities_activations() -> None:
    keys = torch.randn(2, 6, 4)
    queries = torch.randn(2, 3, 4)
    probe_mask = torch.tensor([[True, True, False], [True, False, False]])
    valid = torch.ones(2, 6, dtype=torch.bool)
    valid[0, 4:] = False
    p = site_probabilities(keys, queries, probe_mask, valid, "sigmoid")
    assert p.shape == (2, 6) and torch.all(p[0, 4:] == 0)
    expected = torch.sigmoid(keys[1] @ queries[1, 0] / 2.0)
    torch.testing.assert_close(p[1], expected)
    q = site_probabilities(keys, queries, probe_mask, valid, "softmax_scaled", 1.0)
    # With a site count of 1 the scaled softmax sums to 1 over valid residues.
    torch.testing.assert_close(q.sum(1), torch.ones(2))
    with pytest.raises(ValueError, match="bsp_activation"):
        site_probabilities(keys, queries, probe_mask, valid, "relu")


def test_site_metrics_hand_computed() -> None:
    from tamis.screening.sites import site_metrics

    probs = np.array([0.9, 0.2, 0.6, 0.1, 0.3])
    labels = np.array([1, 0, 0, 1, 0])
    m = site_metrics(probs, labels, threshold=0.5)
    # Predicted {0, 2}: tp 1, precision 1/2, recall 1/2, F1 1/2.
    assert m["precision"] == m["recall"] == m["f1"] == pytest.approx(0.5)
    # Top-2 residues {0, 2} hold one of two sites.
    assert m["f1_top_n"] == pytest.approx(0.5)
    # AUROC: site 0 beats all 3 non-sites, site 3 none -> 3 / 6.
    assert m["auroc"] == pytest.approx(0.5)
