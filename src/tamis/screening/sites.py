"""Binding-site prediction with the S²Drug binding-site head.

The head reads sequence features only (ESM2 over the chain), scored against
ligand probes, so it predicts sites for proteins without a known pocket.
Long chains are processed in consecutive windows of the model's sequence crop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from rdkit import Chem

from tamis.screening.encoders.ligand import collate_graphs, featurize
from tamis.screening.encoders.protein import tokenize
from tamis.screening.metrics import auroc, rank_order, ranked_labels
from tamis.screening.model import S2Drug

__all__ = ["predict_sites", "site_metrics"]


@torch.no_grad()
def predict_sites(
    model: S2Drug, sequence: str, probes: Sequence[Chem.Mol], device: str = "cpu"
) -> np.ndarray:
    """Per-residue binding-site probabilities of a chain.

    Args:
        model: Trained model.
        sequence: The chain's sequence (length L).
        probes: Ligands known or hoped to bind (the K probes).
        device: Torch device.

    Returns:
        (L,) probabilities.
    """
    if not probes:
        raise ValueError("predict_sites: at least one ligand probe is needed")
    model.eval()
    lig = collate_graphs([featurize(m, False) for m in probes]).to(device)
    h = model.ligand_features(lig)  # (K, Dl)
    win = model.shape.max_seq_len
    out = np.zeros(len(sequence), dtype=np.float32)
    for start in range(0, len(sequence), win):
        piece = sequence[start : start + win]
        tokens = tokenize([piece]).to(device)
        feats = model.protein(tokens)  # (1, l+2, Ds)
        mask = torch.ones(1, h.shape[0], dtype=torch.bool, device=device)
        probs = model.site_probabilities(feats, tokens, h[None], mask)  # (1, l+2)
        out[start : start + len(piece)] = probs[0, 1 : len(piece) + 1].cpu().numpy()
    return out


def site_metrics(
    probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5, seed: int = 0
) -> dict[str, float]:
    """AUROC, F1, precision and recall of residue labels.

    Args:
        probs: (L,) predicted probabilities.
        labels: (L,) 0/1 true labels.
        threshold: Probability above which a residue is predicted as site.
        seed: Tie-breaking seed of the AUROC ranking.
    """
    labels = np.asarray(labels).astype(bool)
    pred = np.asarray(probs) >= threshold
    tp = int((pred & labels).sum())
    precision = tp / max(int(pred.sum()), 1)
    recall = tp / max(int(labels.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    # F1 when the top-n residues are called sites, n = number of true sites:
    # independent of calibration (a model trained on ~10% positives rarely
    # outputs probabilities above 0.5).
    n_true = int(labels.sum())
    top = rank_order(np.asarray(probs, dtype=np.float64), seed)[:n_true]
    hits = int(labels[top].sum())
    f1_top = hits / n_true if n_true else 0.0
    return {
        "auroc": auroc(ranked_labels(probs, labels, seed)),
        "f1": f1,
        "f1_top_n": f1_top,
        "precision": precision,
        "recall": recall,
        "n_sites": int(labels.sum()),
        "n_residues": len(labels),
    }
