"""Protein sequence encoder with the ESM2 architecture (transformers ``EsmModel``).

Random initialisation by default, in the ESM2-8M shape (6 layers, hidden 320,
20 heads, FFN 1280, 33-token vocabulary, rotary positions); ``weights`` points
at a local directory saved by ``save_pretrained`` (for example
``facebook/esm2_t6_8M_UR50D`` downloaded elsewhere) to load real ESM2 weights.
The tokenizer reproduces ESM2's vocabulary order, so token ids match real
checkpoints. Reference: Lin et al., Science 379, 1123 (2023).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["ESM_VOCAB", "tokenize", "ProteinEncoder", "esm_config"]

#: ESM2's 33 tokens in id order.
ESM_VOCAB = (
    "<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I",
    "D", "P", "K", "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O",
    ".", "-", "<null_1>", "<mask>",
)  # fmt: skip
_INDEX = {t: i for i, t in enumerate(ESM_VOCAB)}
CLS, PAD, EOS, UNK = 0, 1, 2, 3


def tokenize(sequences: Sequence[str], max_len: int | None = None) -> torch.Tensor:
    """ESM2 token ids: ``<cls> seq <eos>`` padded with ``<pad>``.

    Args:
        sequences: Protein sequences (one-letter codes).
        max_len: Residues kept per sequence (the caller crops; here a hard cap).

    Returns:
        (B, L + 2) int64 token ids, L the longest kept sequence.
    """
    seqs = [s[:max_len] if max_len else s for s in sequences]
    width = max(len(s) for s in seqs) + 2
    out = torch.full((len(seqs), width), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids = [CLS, *(_INDEX.get(c, UNK) for c in s.upper()), EOS]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def esm_config(
    layers: int = 6,
    hidden: int = 320,
    heads: int = 20,
    ffn: int = 1280,
    max_positions: int = 1026,
):  # noqa: ANN201 - transformers type
    """An ``EsmConfig`` of the given shape (defaults: ESM2-8M)."""
    from transformers import EsmConfig

    return EsmConfig(
        vocab_size=len(ESM_VOCAB),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        position_embedding_type="rotary",
        max_position_embeddings=max_positions,
        pad_token_id=PAD,
        mask_token_id=_INDEX["<mask>"],
        token_dropout=True,
        emb_layer_norm_before=False,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


class ProteinEncoder(nn.Module):
    """ESM2-shaped sequence encoder returning per-residue features.

    Args:
        layers: Transformer layers.
        hidden: Hidden size.
        heads: Attention heads.
        ffn: Feed-forward size.
        weights: Local directory with real ESM2 weights (``from_pretrained``); the
            shape arguments are then ignored.
    """

    def __init__(
        self,
        layers: int = 6,
        hidden: int = 320,
        heads: int = 20,
        ffn: int = 1280,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        from transformers import EsmModel

        if weights:
            if not Path(weights).is_dir():
                raise FileNotFoundError(f"{weights}: ESM2 weights directory not found")
            self.esm = EsmModel.from_pretrained(weights, add_pooling_layer=False)
        else:
            self.esm = EsmModel(
                esm_config(layers, hidden, heads, ffn), add_pooling_layer=False
            )
        self.dim = self.esm.config.hidden_size

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L+2) token ids -> (B, L+2, D) residue features (incl. cls/eos)."""
        mask = (tokens != PAD).long()
        return self.esm(input_ids=tokens, attention_mask=mask).last_hidden_state

    @staticmethod
    def mean_pool(features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(B, D) mean over real residues (no cls, eos or padding)."""
        real = ((tokens != PAD) & (tokens != CLS) & (tokens != EOS)).float()
        return (features * real[..., None]).sum(1) / real.sum(1, keepdim=True).clamp(
            min=1.0
        )
