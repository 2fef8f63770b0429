"""Contrastive pieces shared by CL4SRec and SRA-CL: NT-Xent and id-level views.

Both methods contrast two (B, D) views with the in-batch NT-Xent loss used by
CL4SRec (arXiv:2010.14395) and SRA-CL (arXiv:2503.04162); only the way the
views are made differs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "nt_xent",
    "repad_left",
    "unpad_left",
    "trim_left",
    "stack_left",
    "length_groups",
    "encode_by_length",
]


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


def length_groups(
    lengths: torch.Tensor, max_groups: int, call_cost: int = 256
) -> list[int]:
    """Cut points that split rows sorted by length into few cheap backbone calls.

    The cost of a call is modelled as ``rows * width + call_cost``: every row
    is padded to the call's longest one, and each call has a fixed overhead
    (``call_cost`` in row-positions). The cuts minimise the total cost over at
    most ``max_groups`` calls, by dynamic programming over the distinct
    lengths (at most the model's maximum length, so this is cheap).

    Args:
        lengths: (R,) non-padding length of each row, sorted ascending.
        max_groups: Largest number of calls.
        call_cost: Fixed cost of one call, in row-positions.

    Returns:
        Group sizes (sum R), in order, shortest rows first.
    """
    values, counts = torch.unique_consecutive(lengths, return_counts=True)
    widths = values.clamp(min=1).tolist()
    rows = [0, *torch.cumsum(counts, 0).tolist()]  # rows[i]: rows before value i
    m = len(widths)
    groups = max(1, min(max_groups, m))
    inf = float("inf")
    # best[g][j]: cheapest cover of the first j values with g calls.
    best = [[inf] * (m + 1) for _ in range(groups + 1)]
    back = [[0] * (m + 1) for _ in range(groups + 1)]
    best[0][0] = 0.0
    for g in range(1, groups + 1):
        for j in range(1, m + 1):
            for i in range(j):
                cost = best[g - 1][i] + (rows[j] - rows[i]) * widths[j - 1] + call_cost
                if cost < best[g][j]:
                    best[g][j], back[g][j] = cost, i
    g = min(range(1, groups + 1), key=lambda n: best[n][m])
    sizes, j = [], m
    while g > 0:
        i = back[g][j]
        sizes.append(rows[j] - rows[i])
        j, g = i, g - 1
    return sizes[::-1]


def encode_by_length(
    encode: Callable[[torch.Tensor], torch.Tensor],
    seq: torch.Tensor,
    max_groups: int,
    call_cost: int = 256,
) -> torch.Tensor:
    """Encode a left-padded (R, L) matrix in a few calls grouped by row length.

    Rows are sorted by their number of items and cut into at most
    ``max_groups`` calls (:func:`length_groups`), each trimmed to its longest
    row, so short sequences are not padded to the longest one of the batch.
    The encoders count positions from the right and mask padding, so each row's
    encoding is the same function of its items as in a single call.

    Args:
        encode: The backbone's ``encode``, (r, w) ids -> (r, D).
        seq: (R, L) left-padded ids.
        max_groups: Largest number of backbone calls (1 = one call).
        call_cost: Fixed cost of a call in row-positions (see
            :func:`length_groups`); the default, 256, is a heuristic.

    Returns:
        (R, D) encodings in the input row order.
    """
    if max_groups <= 1 or len(seq) == 0:
        return encode(trim_left(seq))
    lengths = (seq > 0).sum(dim=1)  # (R,)
    order = torch.argsort(lengths, stable=True)
    sizes = length_groups(lengths[order].cpu(), max_groups, call_cost)
    if len(sizes) == 1:
        return encode(trim_left(seq))
    parts = [encode(trim_left(seq[rows])) for rows in order.split(sizes)]
    encoded = torch.cat(parts)  # (R, D) in sorted order
    return encoded[torch.argsort(order)]


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
