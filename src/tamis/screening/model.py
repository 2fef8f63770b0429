"""The S²Drug dual encoder with binding-site head.

Towers: a ligand graph network; an ESM2-shaped sequence model (stage 1 pools
it over the whole sequence); a pocket structure encoder; the residue-level gate
fusing sequence and structure features at pocket residues; two transformer
layers over the fused residues with mean pooling; projection heads to a shared
L2-normalised space. The binding-site head scores each residue from sequence
features alone against K ligand probes. Reference: He et al., S²Drug,
arXiv:2511.07006 (AAAI 2026).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tamis.screening.data.pockets import Pocket
from tamis.screening.encoders.gate import ResidueGate
from tamis.screening.encoders.ligand import LigandBatch, LigandEncoder
from tamis.screening.encoders.pocket import PocketEncoder, encode_residues
from tamis.screening.encoders.protein import PAD, ProteinEncoder, tokenize

__all__ = [
    "ModelShape",
    "PocketBatch",
    "collate_pockets",
    "crop_window",
    "site_probabilities",
    "S2Drug",
]


@dataclass
class ModelShape:
    """Sizes and switches of :class:`S2Drug` (mirrors the config section)."""

    embed_dim: int = 128
    ligand_dim: int = 128
    ligand_layers: int = 4
    esm_layers: int = 6
    esm_hidden: int = 320
    esm_heads: int = 20
    esm_ffn: int = 1280
    esm_weights: str | None = None
    pocket_dim: int = 128
    pocket_layers: int = 2
    fused_dim: int = 128
    fusion_layers: int = 2
    fusion: str = "gate"
    bsp_dim: int = 64
    bsp_activation: str = "sigmoid"
    bsp_site_count: float = 20.0
    max_seq_len: int = 512


@dataclass
class PocketBatch:
    """Pockets with their cropped chain sequences, padded.

    Attributes:
        tokens: (B, L+2) ESM token ids of the sequence windows.
        aa: (B, R) pocket residue type ids.
        xyz: (B, R, 3) pocket residue centres.
        mask: (B, R) True for real pocket residues.
        positions: (B, R) token index of each pocket residue (0 = none: cls).
        has_position: (B, R) True where the residue maps into the window.
        site_labels: (B, L+2) binding-site labels (0 outside the sequence).
        site_valid: (B, L+2) True on real residues of the window.
    """

    tokens: torch.Tensor
    aa: torch.Tensor
    xyz: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor
    has_position: torch.Tensor
    site_labels: torch.Tensor
    site_valid: torch.Tensor

    def to(self, device: torch.device | str) -> PocketBatch:
        """Move every tensor to ``device``."""
        return PocketBatch(*(getattr(self, f).to(device) for f in self.__annotations__))


def crop_window(pocket: Pocket, max_len: int) -> int:
    """Start of a ``max_len`` window of the sequence centred on the pocket."""
    n = len(pocket.sequence)
    if n <= max_len:
        return 0
    mapped = pocket.seq_positions[pocket.seq_positions >= 0]
    centre = int(np.median(mapped)) if len(mapped) else n // 2
    return int(min(max(centre - max_len // 2, 0), n - max_len))


def collate_pockets(pockets: Sequence[Pocket], max_seq_len: int = 512) -> PocketBatch:
    """Pad pockets into a :class:`PocketBatch`, cropping long sequences."""
    starts = [crop_window(p, max_seq_len) for p in pockets]
    windows = [
        p.sequence[s : s + max_seq_len] for p, s in zip(pockets, starts, strict=True)
    ]
    tokens = tokenize(windows)
    b, r = len(pockets), max(len(p.residue_aa) for p in pockets)
    aa = torch.zeros(b, r, dtype=torch.long)
    xyz = torch.zeros(b, r, 3)
    mask = torch.zeros(b, r, dtype=torch.bool)
    positions = torch.zeros(b, r, dtype=torch.long)
    labels = torch.zeros(tokens.shape, dtype=torch.float32)
    valid = torch.zeros(tokens.shape, dtype=torch.bool)
    for i, (p, s) in enumerate(zip(pockets, starts, strict=True)):
        n = len(p.residue_aa)
        aa[i, :n] = encode_residues(p.residue_aa)
        xyz[i, :n] = torch.from_numpy(p.coords - p.coords.mean(0))
        mask[i, :n] = True
        pos = p.seq_positions - s
        inside = (p.seq_positions >= 0) & (pos >= 0) & (pos < max_seq_len)
        positions[i, :n] = torch.from_numpy(np.where(inside, pos + 1, 0))
        w = len(windows[i])
        labels[i, 1 : w + 1] = torch.from_numpy(p.site_labels[s : s + w])
        valid[i, 1 : w + 1] = True
    return PocketBatch(tokens, aa, xyz, mask, positions, positions > 0, labels, valid)


def site_probabilities(
    residue_keys: torch.Tensor,
    probe_queries: torch.Tensor,
    probe_mask: torch.Tensor,
    valid: torch.Tensor,
    activation: str = "sigmoid",
    site_count: float = 20.0,
) -> torch.Tensor:
    """Binding-site probability per residue from K ligand probes.

    ``a_k(i) = (W_r x_s(i)) . (W_l h_k) / sqrt(d)``; ``sigmoid``:
    ``y(i) = mean_k sigmoid(a_k(i))``; ``softmax_scaled``: the paper's softmax
    over residues, multiplied by the expected number of site residues and
    clipped to 1 so that it can be trained with BCE against many positives.

    Args:
        residue_keys: (B, L, d) projected sequence features ``W_r x_s``.
        probe_queries: (B, K, d) projected ligand probes ``W_l h_k``.
        probe_mask: (B, K) True for real probes.
        valid: (B, L) True for real residues.
        activation: ``sigmoid`` or ``softmax_scaled``.
        site_count: Expected site residues (``softmax_scaled`` only).

    Returns:
        (B, L) probabilities (0 on invalid positions).
    """
    d = residue_keys.shape[-1]
    logits = torch.einsum("bld,bkd->bkl", residue_keys, probe_queries) / d**0.5
    if activation == "sigmoid":
        per_probe = torch.sigmoid(logits)  # (B, K, L)
    elif activation == "softmax_scaled":
        logits = logits.masked_fill(~valid[:, None, :], float("-inf"))
        per_probe = (torch.softmax(logits, dim=-1) * site_count).clamp(max=1.0)
    else:
        raise ValueError(
            f"bsp_activation: got {activation!r}, expected sigmoid or softmax_scaled"
        )
    k = probe_mask.float()[..., None]  # (B, K, 1)
    probs = (per_probe * k).sum(1) / k.sum(1).clamp(min=1.0)
    return probs * valid


def _head(d_in: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, d_in), nn.SiLU(), nn.Linear(d_in, d_out))


class S2Drug(nn.Module):
    """Sequence-structure dual encoder for virtual screening.

    Args:
        shape: Sizes and switches. ``fusion="structure"`` gives the
            structure-only (DrugCLIP-like) model, which never runs ESM.
    """

    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        self.shape = shape
        self.ligand = LigandEncoder(shape.ligand_dim, shape.ligand_layers)
        self.ligand_head = _head(shape.ligand_dim, shape.embed_dim)
        self.protein = ProteinEncoder(
            shape.esm_layers,
            shape.esm_hidden,
            shape.esm_heads,
            shape.esm_ffn,
            shape.esm_weights,
        )
        d_seq = self.protein.dim
        self.sequence_head = _head(d_seq, shape.embed_dim)
        self.pocket = PocketEncoder(shape.pocket_dim, shape.pocket_layers)
        self.gate = ResidueGate(d_seq, shape.pocket_dim, shape.fused_dim, shape.fusion)
        layer = nn.TransformerEncoderLayer(
            shape.fused_dim,
            4,
            2 * shape.fused_dim,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.fusion = nn.TransformerEncoder(
            layer, shape.fusion_layers, enable_nested_tensor=False
        )
        self.pocket_head = _head(shape.fused_dim, shape.embed_dim)
        self.bsp_residue = nn.Linear(d_seq, shape.bsp_dim)
        self.bsp_ligand = nn.Linear(shape.ligand_dim, shape.bsp_dim)

    # -- ligands -------------------------------------------------------------
    def ligand_features(self, batch: LigandBatch) -> torch.Tensor:
        """(B, Dl) pooled ligand features h (the BSP probes)."""
        return self.ligand(batch)

    def embed_ligand_features(self, h: torch.Tensor) -> torch.Tensor:
        """(B, Dl) -> (B, E) normalised ligand embeddings."""
        return F.normalize(self.ligand_head(h), dim=-1)

    def encode_ligands(self, batch: LigandBatch) -> torch.Tensor:
        """(B, E) normalised ligand embeddings."""
        return self.embed_ligand_features(self.ligand_features(batch))

    # -- proteins ------------------------------------------------------------
    def encode_sequences(self, tokens: torch.Tensor) -> torch.Tensor:
        """Stage 1: (B, L+2) tokens -> (B, E) normalised sequence embeddings."""
        feats = self.protein(tokens)
        return F.normalize(
            self.sequence_head(self.protein.mean_pool(feats, tokens)), dim=-1
        )

    def pocket_states(
        self, batch: PocketBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Fused pocket embedding, gate values and full sequence features.

        Returns:
            ``(embedding (B, E), beta (B, R), x_s_full (B, L+2, Ds) or None)``.
        """
        x_g = self.pocket(batch.aa, batch.xyz, batch.mask)  # (B, R, Dg)
        if self.shape.fusion == "structure":
            seq_full = None
            x_s = x_g.new_zeros(*x_g.shape[:2], self.protein.dim)
        else:
            seq_full = self.protein(batch.tokens)  # (B, L+2, Ds)
            idx = batch.positions[..., None].expand(-1, -1, seq_full.shape[-1])
            x_s = torch.gather(seq_full, 1, idx) * batch.has_position[..., None]
        fused, beta = self.gate(x_s, x_g)  # (B, R, D), (B, R)
        h = self.fusion(fused, src_key_padding_mask=~batch.mask)
        m = batch.mask[..., None].float()
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, D)
        return F.normalize(self.pocket_head(pooled), dim=-1), beta, seq_full

    def encode_pockets(self, batch: PocketBatch) -> torch.Tensor:
        """(B, E) normalised pocket embeddings."""
        return self.pocket_states(batch)[0]

    # -- binding sites -------------------------------------------------------
    def site_probabilities(
        self,
        seq_full: torch.Tensor,
        tokens: torch.Tensor,
        probes: torch.Tensor,
        probe_mask: torch.Tensor,
    ) -> torch.Tensor:
        """(B, L+2) binding-site probabilities from sequence features only.

        Args:
            seq_full: (B, L+2, Ds) ESM features.
            tokens: (B, L+2) token ids (to find real residues).
            probes: (B, K, Dl) ligand features h_k.
            probe_mask: (B, K) True for real probes.
        """
        valid = (tokens != PAD) & (tokens > 3)
        return site_probabilities(
            self.bsp_residue(seq_full),
            self.bsp_ligand(probes),
            probe_mask,
            valid,
            self.shape.bsp_activation,
            self.shape.bsp_site_count,
        )
