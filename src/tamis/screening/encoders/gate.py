"""The residue-level gate of S²Drug that fuses sequence and structure features.

``beta_i = sigmoid(w^T [W_s x_s(i); W_g x_g(i)] + b)`` and
``x_f(i) = beta_i W_s x_s(i) + (1 - beta_i) W_g x_g(i)``: one scalar per
residue decides how much of the fused feature comes from the sequence model.
Reference: He et al., arXiv:2511.07006, stage-2 fusion.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["gate_fuse", "ResidueGate"]


def gate_fuse(
    seq: torch.Tensor, struct: torch.Tensor, logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse projected features with a per-residue scalar gate.

    Args:
        seq: (B, R, D) projected sequence features ``W_s x_s``.
        struct: (B, R, D) projected structure features ``W_g x_g``.
        logits: (B, R) gate logits.

    Returns:
        ``(fused (B, R, D), beta (B, R))``.
    """
    beta = torch.sigmoid(logits)
    return beta[..., None] * seq + (1 - beta[..., None]) * struct, beta


class ResidueGate(nn.Module):
    """Learned residue gate, or a fixed mixing weight for ablations.

    Args:
        seq_dim: Width of x_s.
        struct_dim: Width of x_g.
        dim: Fused width.
        mode: ``gate`` (learned), ``fixed`` (beta = ``fixed_beta``), ``structure``
            (beta = 0) or ``sequence`` (beta = 1).
        fixed_beta: Beta in ``fixed`` mode.
    """

    def __init__(
        self,
        seq_dim: int,
        struct_dim: int,
        dim: int,
        mode: str = "gate",
        fixed_beta: float = 0.5,
    ) -> None:
        super().__init__()
        if mode not in ("gate", "fixed", "structure", "sequence"):
            raise ValueError(
                f"fusion mode: got {mode!r}, expected gate, fixed, "
                "structure or sequence"
            )
        self.mode, self.fixed_beta = mode, fixed_beta
        self.w_s = nn.Linear(seq_dim, dim)
        self.w_g = nn.Linear(struct_dim, dim)
        self.w_beta = nn.Linear(2 * dim, 1)

    def forward(
        self, x_s: torch.Tensor, x_g: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, R, Ds), (B, R, Dg) -> fused (B, R, D) and beta (B, R)."""
        s, g = self.w_s(x_s), self.w_g(x_g)
        if self.mode == "gate":
            logits = self.w_beta(torch.cat([s, g], dim=-1)).squeeze(-1)
        else:
            beta = {"fixed": self.fixed_beta, "structure": 0.0, "sequence": 1.0}
            b = min(max(beta[self.mode], 1e-6), 1 - 1e-6)
            logits = torch.full(
                s.shape[:-1],
                float(torch.logit(torch.tensor(b))),
                device=s.device,
                dtype=s.dtype,
            )
        return gate_fuse(s, g, logits)
