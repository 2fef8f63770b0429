"""Shared fixtures: a generated screening dataset and a tiny trained model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tamis.core.config import from_dict
from tamis.screening.config import TrainConfig
from tamis.screening.synthetic import make_synthetic

TINY_MODEL = {
    "esm_layers": 1,
    "esm_hidden": 32,
    "esm_heads": 2,
    "esm_ffn": 64,
    "ligand_dim": 32,
    "ligand_layers": 2,
    "pocket_dim": 32,
    "pocket_layers": 1,
    "fused_dim": 32,
    "fusion_layers": 1,
    "embed_dim": 16,
    "bsp_dim": 16,
    "max_seq_len": 64,
}


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    """A small generated dataset (2 families)."""
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic(
        root, seed=1, complexes_per_family=2, actives=6, decoys=20, n_families=3
    )


def tiny_config(synthetic, out: Path, **overrides) -> TrainConfig:
    """A tiny two-stage training config over the generated data."""
    data = {
        "out": str(out),
        "seed": 0,
        "device": "cpu",
        "checkpoint_every": 2,
        "model": TINY_MODEL,
        "stage1": {"activity": [str(synthetic.activity)], "steps": 3, "batch_size": 8},
        "stage2": {
            "complexes": [str(synthetic.complexes)],
            "steps": 3,
            "pockets_per_batch": 4,
            "probes": 2,
        },
    }
    data.update(overrides)
    return from_dict(TrainConfig, data)


@pytest.fixture(scope="session")
def trained_run(synthetic, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny training run directory."""
    from tamis.screening.train import run_training

    out = tmp_path_factory.mktemp("runs")
    return run_training(tiny_config(synthetic, out))
