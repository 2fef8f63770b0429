"""Pocket structure encoder: a distance-biased transformer over pocket residues.

Each pocket residue is a token (residue type embedding); attention logits get
a learned bias from a radial-basis expansion of the pairwise residue distance,
and each token also sees a radial profile of its neighbours. Only distances
enter, so the encoder is invariant to rotations, translations and reflections
of the pocket (E(3)); it stands in for Uni-Mol's pocket tower (no weights here)
at residue rather than atom resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from tamis.screening.encoders.ligand import rbf

__all__ = ["PocketEncoder", "AA_ALPHABET", "encode_residues"]

AA_ALPHABET = "ACDEFGHIKLMNPQRSTVWY"
_AA_INDEX = {a: i + 1 for i, a in enumerate(AA_ALPHABET)}


def encode_residues(aa: str) -> torch.Tensor:
    """(R,) residue type ids (0 for unknown)."""
    return torch.tensor([_AA_INDEX.get(a, 0) for a in aa], dtype=torch.long)


class _BiasedLayer(nn.Module):
    def __init__(self, dim: int, heads: int, n_rbf: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.bias = nn.Sequential(
            nn.Linear(n_rbf, heads), nn.SiLU(), nn.Linear(heads, heads)
        )
        self.ff = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
        )
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(
        self, x: torch.Tensor, dist_rbf: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        b, r, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, r, 3, self.heads, -1).unbind(2)
        bias = self.bias(dist_rbf).permute(0, 3, 1, 2)  # (B, H, R, R)
        bias = bias.masked_fill(~mask[:, None, None, :], float("-inf"))
        att = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias
        )  # (B, H, R, D/H)
        x = x + self.out(att.transpose(1, 2).reshape(b, r, d))
        return x + self.ff(self.norm2(x))


class PocketEncoder(nn.Module):
    """E(3)-invariant encoder of pocket residues.

    Args:
        dim: Width.
        layers: Distance-biased attention layers.
        heads: Attention heads.
        n_rbf: Radial basis functions (0-20 A).
    """

    def __init__(
        self, dim: int = 128, layers: int = 2, heads: int = 4, n_rbf: int = 16
    ) -> None:
        super().__init__()
        self.dim, self.n_rbf = dim, n_rbf
        self.embed = nn.Embedding(len(AA_ALPHABET) + 1, dim)
        self.env = nn.Linear(n_rbf, dim)
        self.layers = nn.ModuleList(
            _BiasedLayer(dim, heads, n_rbf) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, aa: torch.Tensor, xyz: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Per-residue structure features.

        Args:
            aa: (B, R) residue type ids.
            xyz: (B, R, 3) residue centres.
            mask: (B, R) True for real residues.

        Returns:
            (B, R, D) features x_g.
        """
        dist = torch.cdist(xyz, xyz)  # (B, R, R)
        dist_rbf = rbf(dist, self.n_rbf, 20.0)  # (B, R, R, K)
        pair_mask = (mask[:, :, None] & mask[:, None, :]).float()[..., None]
        env = (dist_rbf * pair_mask).sum(2) / mask.sum(1).clamp(min=1)[:, None, None]
        x = self.embed(aa) + self.env(env)  # (B, R, D)
        for layer in self.layers:
            x = layer(x, dist_rbf, mask)
        return self.norm(x)
