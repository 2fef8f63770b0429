"""Building blocks shared by the neural recommenders (pure tensor functions)."""

from __future__ import annotations

import torch

__all__ = ["fast_dropout", "keep_mask"]


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
