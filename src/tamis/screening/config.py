"""Config kinds of the screening domain: training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

from tamis.core.config import param, register_config

__all__ = [
    "ModelConfig",
    "SamplingConfig",
    "Stage1Config",
    "Stage2Config",
    "TrainConfig",
    "EvaluateConfig",
]


@dataclass
class ModelConfig:
    """Shapes and switches of the S²Drug model."""

    embed_dim: int = param(128, "shared embedding width (L2-normalised)", ge=8)
    ligand_dim: int = param(128, "ligand graph network width", ge=8)
    ligand_layers: int = param(4, "ligand message-passing layers", ge=1)
    esm_layers: int = param(6, "ESM2 layers (8M shape: 6)", ge=1)
    esm_hidden: int = param(320, "ESM2 hidden size (8M shape: 320)", ge=8)
    esm_heads: int = param(20, "ESM2 attention heads (8M shape: 20)", ge=1)
    esm_ffn: int = param(1280, "ESM2 feed-forward size (8M shape: 1280)", ge=8)
    weights: str | None = param(None, "local directory with real ESM2 weights")
    pocket_dim: int = param(128, "pocket structure encoder width", ge=8)
    pocket_layers: int = param(2, "distance-biased pocket layers", ge=1)
    fused_dim: int = param(128, "width after the residue gate", ge=8)
    fusion_layers: int = param(2, "transformer layers over fused residues", ge=1)
    fusion: str = param(
        "gate",
        "residue fusion: learned gate, fixed beta, or one modality",
        choices=("gate", "fixed", "structure", "sequence"),
    )
    bsp_dim: int = param(64, "binding-site head projection width", ge=4)
    bsp_activation: str = param(
        "sigmoid",
        "binding-site probability per residue",
        choices=("sigmoid", "softmax_scaled"),
    )
    bsp_site_count: float = param(20.0, "expected site residues (softmax_scaled)", gt=0)
    max_seq_len: int = param(512, "residues of sequence seen by ESM2 (crop)", ge=16)

    def validate(self) -> None:
        """ESM2's hidden size must split evenly over its heads."""
        if self.esm_hidden % self.esm_heads:
            raise ValueError(
                f"model.esm_hidden: {self.esm_hidden} is not divisible by "
                f"esm_heads={self.esm_heads}"
            )


@dataclass
class SamplingConfig:
    """Bilateral data sampling switches (stage 1)."""

    homology_weighting: bool = param(True, "down-weight large homology clusters")
    identity: float = param(0.4, "homology cluster identity", gt=0, le=1)
    alpha: float = param(0.5, "cluster weight exponent: 1/|C|^alpha", ge=0)
    redundancy_removal: bool = param(
        True, "one representative per near-identical protein group"
    )
    redundancy_identity: float = param(
        0.95, "identity of near-identical proteins", gt=0, le=1
    )
    noise_filter: bool = param(True, "drop pairs with inconsistent repeats")
    noise_delta: float = param(1.0, "max std of repeated log-affinities", gt=0)
    promiscuity_filter: bool = param(True, "drop frequent-hitter ligands")
    max_partners: int = param(
        20, "frequent hitter: binds more proteins than this", ge=1
    )
    pains_filter: bool = param(True, "drop PAINS ligands (RDKit catalogue)")


@dataclass
class Stage1Config:
    """Stage 1: sequence-ligand contrastive pre-training on activity pairs."""

    activity: list[str] = param(
        factory=list, help="activity tables (DeepDTA folders or CSV/TSV files)"
    )
    positive_threshold: float = param(
        7.0, "affinity (p-scale) that makes a pair positive"
    )
    exclude_fasta: str | None = param(
        None, "FASTA of test targets whose homologs are removed from stage 1"
    )
    exclude_targets: list[str] = param(
        factory=list, help="FASTA names to exclude (empty: every record)"
    )
    exclude_identity: float = param(
        0.4, "identity that counts as homologous", gt=0, le=1
    )
    sampling: SamplingConfig = param(factory=SamplingConfig, help="BDS switches")
    steps: int = param(200, "optimiser steps (0 skips stage 1)", ge=0)
    batch_size: int = param(32, "pairs per batch", ge=2)
    lr: float = param(3e-4, "AdamW learning rate", gt=0)


@dataclass
class Stage2Config:
    """Stage 2: sequence-structure fusion on complexes with the binding-site task."""

    complexes: list[str] = param(
        factory=list,
        help="folders searched for protein PDB + ligand SDF/mol2 complexes",
    )
    targets: list[str] = param(
        factory=list,
        help="DUD-E style folders: crystal "
        "pocket paired with the crystal ligand and actives",
    )
    max_actives: int = param(64, "actives per target used as positives", ge=0)
    steps: int = param(200, "optimiser steps", ge=0)
    pockets_per_batch: int = param(8, "distinct pockets per batch", ge=2)
    probes: int = param(4, "ligands per pocket in a batch (K BSP probes)", ge=1)
    lr: float = param(3e-4, "AdamW learning rate", gt=0)
    bsp_weight: float = param(1.0, "lambda of the binding-site loss (0: off)", ge=0)
    pocket_cutoff: float = param(6.0, "pocket residues within this distance (A)", gt=0)
    label_cutoff: float = param(6.0, "binding-site label distance (A)", gt=0)


@register_config("screen-train", runner="tamis.screening.train:run_training")
@dataclass
class TrainConfig:
    """Two-stage S²Drug training."""

    name: str = param("s2drug", "run name prefix")
    out: str = param("runs/screening", "folder of run directories")
    seed: int = param(0, "random seed")
    device: str = param("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))
    temperature: float = param(1 / 14, "InfoNCE temperature tau (DrugCLIP: 1/14)", gt=0)
    learn_temperature: bool = param(False, "learn tau instead of fixing it")
    checkpoint_every: int = param(50, "steps between checkpoints", ge=1)
    init: str | None = param(
        None, "run directory whose model.safetensors initialises the model"
    )
    use_3d: bool = param(False, "use ligand conformers from 3D files (2D otherwise)")
    model: ModelConfig = param(factory=ModelConfig, help="model shape")
    stage1: Stage1Config = param(factory=Stage1Config, help="stage 1")
    stage2: Stage2Config = param(factory=Stage2Config, help="stage 2")


@register_config("screen-evaluate", runner="tamis.screening.evaluate:run_evaluation")
@dataclass
class EvaluateConfig:
    """Zero-shot screening of DUD-E style target folders."""

    checkpoint: str | None = param(None, "trained run directory (None: ECFP4 only)")
    targets: list[str] = param(factory=list, help="DUD-E style target folders")
    name: str = param("evaluate", "run name prefix")
    out: str = param("runs/screening", "folder of run directories")
    seed: int = param(0, "tie-breaking and subsampling seed")
    max_decoys: int | None = param(None, "subsample decoys per target")
    batch_size: int = param(512, "molecules per encoding chunk", ge=1)
    ecfp_baseline: bool = param(
        True, "also score ECFP4 max-Tanimoto to the crystal ligand"
    )
    pocket_cutoff: float = param(6.0, "pocket cut-off (A)", gt=0)
    device: str = param("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))
