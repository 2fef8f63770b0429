"""Losses of S²Drug: symmetric InfoNCE with duplicate masking and binding-site BCE."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["duplicate_mask", "symmetric_info_nce", "binding_site_loss"]


def duplicate_mask(
    pocket_keys: Sequence[str], ligand_keys: Sequence[str]
) -> torch.Tensor:
    """(N, N) True where pair m is a false negative for pair n (off-diagonal).

    Pair m is not a negative for pair n when it shares n's pocket (its ligand
    binds n's pocket) or n's ligand (its pocket binds n's ligand).
    """
    p = list(pocket_keys)
    lig = list(ligand_keys)
    n = len(p)
    same = torch.tensor(
        [[p[i] == p[j] or lig[i] == lig[j] for j in range(n)] for i in range(n)],
        dtype=torch.bool,
    )
    return same & ~torch.eye(n, dtype=torch.bool)


def symmetric_info_nce(
    pocket: torch.Tensor,
    ligand: torch.Tensor,
    temperature: float | torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised pocket and ligand embeddings.

    Score matrix ``s = pocket @ ligand.T / temperature``, shape (N, N), positives
    on the diagonal; masked entries are removed from both softmaxes. The loss is
    the mean of the pocket->ligand (row) and ligand->pocket (column) cross
    entropies: ``L = -(1/2N) sum_n [log softmax_row(s)_nn + log softmax_col(s)_nn]``.

    Args:
        pocket: (N, E) normalised pocket (or protein) embeddings.
        ligand: (N, E) normalised ligand embeddings.
        temperature: tau (DrugCLIP fixes 1/14).
        mask: (N, N) True for in-batch duplicates to drop from the negatives.

    Returns:
        Scalar loss.
    """
    scores = pocket @ ligand.T / temperature  # (N, N)
    if mask is not None:
        scores = scores.masked_fill(mask.to(scores.device), float("-inf"))
    target = torch.arange(scores.shape[0], device=scores.device)
    return 0.5 * (F.cross_entropy(scores, target) + F.cross_entropy(scores.T, target))


def binding_site_loss(
    probs: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Per-residue binary cross entropy, averaged over valid residues.

    Args:
        probs: (B, L) predicted binding probabilities in [0, 1].
        labels: (B, L) 0/1 labels.
        valid: (B, L) True for real residues.

    Returns:
        Scalar loss.
    """
    p = probs.clamp(1e-6, 1 - 1e-6)
    bce = F.binary_cross_entropy(p, labels.float(), reduction="none")
    return (bce * valid).sum() / valid.sum().clamp(min=1)
