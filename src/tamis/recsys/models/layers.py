"""Building blocks shared by the neural recommenders (pure tensor functions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = [
    "fast_dropout",
    "keep_mask",
    "length_groups",
    "grouped_encode",
    "check_widths",
]


def keep_mask(
    shape: torch.Size | tuple[int, ...], p: float, device: torch.device
) -> torch.Tensor:
    """Boolean keep-mask with ``P(keep) = 1 - p``, drawn from random bytes.

    ``torch.bernoulli`` is single-threaded and slow on CPU; drawing 64-bit
    random words and reading seven uniform bytes from each is several times
    faster. The drop probability is therefore quantised to a multiple of 1/256
    (``p = 0.5`` and ``0.25`` are exact; ``0.1`` becomes 26/256 ≈ 0.1016). The
    global torch generator is used, so checkpoints capture the stream.

    Args:
        shape: Output shape.
        p: Drop probability in [0, 1).
        device: Where to draw.

    Returns:
        Bool tensor of ``shape``.
    """
    n = 1
    for s in shape:
        n *= int(s)
    threshold = round(p * 256)
    if device.type != "cpu":
        return torch.rand(shape, device=device) >= threshold / 256
    words = torch.empty((n + 6) // 7, dtype=torch.int64).random_()
    # The top byte of a non-negative int64 is biased (its high bit is 0): drop it.
    octets = words.view(torch.uint8).view(-1, 8)[:, :7].reshape(-1)[:n]
    return (octets >= threshold).view(shape)


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with :func:`keep_mask`; identity when not training."""
    if not training or p <= 0.0:
        return x
    threshold = round(p * 256)
    if threshold == 0:
        return x
    scale = 256.0 / (256 - threshold)  # 1 / P(keep) for the quantised p
    mask = keep_mask(x.shape, p, x.device)
    return x * (mask.to(x.dtype) * scale)


def length_groups(
    seq: torch.Tensor, widths: Sequence[int]
) -> list[tuple[torch.Tensor, int]]:
    """Partition a left-padded batch by history length into padded widths.

    Each row goes to the smallest width that holds its history; widths at or
    above the batch width ``L`` collapse into one last group of width ``L``.

    Args:
        seq: (B, L) left-padded item ids + 1, 0 = padding.
        widths: Candidate padded widths, e.g. ``(8, 16, 32)``.

    Returns:
        ``[(rows, width), ...]`` for the non-empty groups, narrowest first;
        ``rows`` are (b,) row indices into ``seq``.
    """
    full = seq.shape[1]
    bounds = sorted({int(w) for w in widths if 0 < w < full}) + [full]
    lengths = (seq > 0).sum(dim=1)  # (B,)
    # Group g holds bounds[g - 1] < length <= bounds[g].
    group = torch.bucketize(lengths, torch.tensor(bounds, device=seq.device))
    out = []
    for g, width in enumerate(bounds):
        rows = torch.nonzero(group == g).flatten()
        if len(rows):
            out.append((rows, width))
    return out


def grouped_encode(
    encode: Callable[[torch.Tensor], torch.Tensor],
    seq: torch.Tensor,
    widths: Sequence[int],
) -> torch.Tensor:
    """Encode a left-padded batch group by group, each cut to its own width.

    Exact for encoders whose output for a row does not depend on the amount of
    left padding (padding masked out, positions counted from the right end):
    every row's output equals that of the whole-batch call, and so does the
    gradient of any loss on the outputs, while all-padding columns cost
    nothing. Dropout masks are drawn per group, so with dropout the random
    stream differs from a whole-batch call (the distribution does not).

    Args:
        encode: Maps (b, w) left-padded ids to (b, D) representations.
        seq: (B, L) left-padded item ids + 1.
        widths: Candidate padded widths (see :func:`length_groups`).

    Returns:
        (B, D) representations in the rows' original order.
    """
    groups = length_groups(seq, widths)
    full = seq.shape[1]
    if len(groups) == 1:
        return encode(seq[:, full - groups[0][1] :])
    parts = [encode(seq[rows, full - width :]) for rows, width in groups]
    order = torch.cat([rows for rows, _ in groups])  # (B,) group-major order
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=order.device)
    return torch.cat(parts)[inverse]  # (B, D)


def check_widths(widths: Sequence[int], field: str = "length_groups") -> None:
    """Raise ``ValueError`` naming ``field`` unless all widths are positive."""
    bad = [w for w in widths if not isinstance(w, int) or w < 1]
    if bad:
        raise ValueError(f"{field}: widths must be positive integers, got {bad}")
