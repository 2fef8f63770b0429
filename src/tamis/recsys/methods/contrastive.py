"""Contrastive pieces shared by CL4SRec and SRA-CL: NT-Xent and id-level views.

Both methods contrast two (B, D) views with the in-batch NT-Xent loss used by
CL4SRec (arXiv:2010.14395) and SRA-CL (arXiv:2503.04162); only the way the
views are made differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["nt_xent", "repad_left", "unpad_left", "trim_left", "stack_left"]


def nt_xent(
    a: torch.Tensor, b: torch.Tensor, temperature: float = 1.0, similarity: str = "dot"
) -> torch.Tensor:
    """In-batch NT-Xent (InfoNCE) between paired views.

    The 2N vectors ``[a; b]`` are scored against each other; row ``i``'s positive
    is its partner (``i + N`` or ``i - N``) and the other 2N - 2 vectors are its
    negatives. The self-similarity on the diagonal is masked out.

    Args:
        a: (N, D) first view.
        b: (N, D) second view, ``b[i]`` paired with ``a[i]``.
        temperature: Divides the scores.
        similarity: ``"dot"`` (the released SRA-CL and CL4SRec code) or ``"cos"``.

    Returns:
        Scalar mean loss over the 2N rows.

    Raises:
        ValueError: On mismatched shapes, N < 2, or an unknown similarity.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"views must both be (N, D), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[0] < 2:
        raise ValueError("NT-Xent needs at least two pairs (N >= 2) for negatives")
    if similarity not in ("dot", "cos"):
        raise ValueError(f"similarity must be dot|cos, got {similarity!r}")
    n = a.shape[0]
    z = torch.cat([a, b], dim=0)  # (2N, D)
    if similarity == "cos":
        z = F.normalize(z, dim=1)
    scores = (z @ z.T) / temperature  # (2N, 2N)
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    scores = scores.masked_fill(eye, float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(scores, partner)


def unpad_left(seq: torch.Tensor) -> list[torch.Tensor]:
    """The non-padding items of each row of a left-padded (B, L) id matrix."""
    lengths = (seq > 0).sum(dim=1)
    width = seq.shape[1]
    return [seq[i, width - int(n) :] for i, n in enumerate(lengths)]


def repad_left(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    """Stack 1-D id rows into a left-padded (B, width) matrix (last items kept)."""
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        row = row[-width:]
        if len(row):
            out[i, width - len(row) :] = row
    return out


def trim_left(seq: torch.Tensor) -> torch.Tensor:
    """Drop the all-padding leading columns of a left-padded (B, L) id matrix."""
    if seq.numel() == 0:
        return seq
    width = max(int((seq > 0).sum(dim=1).max()), 1)
    return seq[:, seq.shape[1] - width :]


def stack_left(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate left-padded (B_i, L_i) matrices along rows, padding to max L_i.

    Extra padding on the left changes nothing for the encoders: positions are
    counted from the right and padding keys are masked.
    """
    width = max(p.shape[1] for p in parts)
    return torch.cat([F.pad(p, (width - p.shape[1], 0)) for p in parts])


class SeededModule(nn.Module):
    """A module that owns ``self.generator`` and saves its state with checkpoints.

    Augmentations and neighbour draws use this generator, so a resumed run draws
    exactly what an uninterrupted one would.
    """

    generator: torch.Generator

    def get_extra_state(self) -> torch.Tensor:
        """The generator's state, saved with checkpoints for bit-exact resume."""
        return self.generator.get_state()

    def set_extra_state(self, state: torch.Tensor) -> None:
        """Restore the generator saved by :meth:`get_extra_state`."""
        self.generator.set_state(state.to(torch.uint8).cpu())
