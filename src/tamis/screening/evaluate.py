"""Zero-shot evaluation on DUD-E style targets: per-target metrics and means."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from tamis.core.device import resolve_device
from tamis.core.runs import Run
from tamis.screening.baselines import max_tanimoto
from tamis.screening.config import EvaluateConfig
from tamis.screening.data.dude import DudeTarget, read_dude_target
from tamis.screening.data.ligands import read_reference_ligand
from tamis.screening.metrics import mean_over_targets, screening_metrics
from tamis.screening.screen import Screener, pocket_from_files

__all__ = ["score_target", "ecfp_scores", "run_evaluation"]

log = logging.getLogger(__name__)


def ecfp_scores(target: DudeTarget) -> np.ndarray:
    """(N,) ECFP4 max-Tanimoto of the library to the crystal ligand."""
    if target.crystal_ligand is None:
        raise ValueError(f"{target.name}: no crystal ligand for the ECFP4 baseline")
    ref = read_reference_ligand(target.crystal_ligand)
    return max_tanimoto([r.mol for r in target.library], [ref])


def score_target(
    screener: Screener, target: DudeTarget, cutoff: float = 6.0
) -> np.ndarray:
    """(N,) cosine of each library molecule with the target's crystal pocket."""
    if target.receptor is None or target.crystal_ligand is None:
        raise ValueError(f"{target.name}: needs a receptor and a crystal ligand")
    pocket = pocket_from_files(target.receptor, target.crystal_ligand, cutoff=cutoff)
    p_emb = screener.encode_pockets([pocket])[0]
    emb, _, _ = screener.encode_library(target.library, total=len(target.library))
    return emb @ p_emb


def run_evaluation(
    cfg: EvaluateConfig, run_dir: Path | None = None, resume: bool = False
) -> Path:
    """Runner of ``screen-evaluate``: metrics per target and their macro mean.

    Resuming recomputes the evaluation (it has no intermediate state).
    """
    from tamis.cli_common import run_logging
    from tamis.screening.train import load_trained

    if not cfg.targets:
        raise ValueError("targets: at least one DUD-E style target folder is needed")
    run = (
        Run.open(run_dir)
        if resume and run_dir
        else Run.create(cfg.out, cfg.name, cfg, cfg.seed, path=run_dir)
    )
    with run_logging(run):
        device = str(resolve_device(cfg.device))
        screener = None
        if cfg.checkpoint:
            screener = Screener(
                load_trained(cfg.checkpoint, device), cfg.batch_size, device=device
            )
        per: dict[str, dict[str, dict[str, Any]]] = {"model": {}, "ecfp4": {}}
        for step, folder in enumerate(cfg.targets, start=1):
            target = read_dude_target(folder, cfg.max_decoys, cfg.seed)
            labels = target.labels
            if screener is not None:
                scores = score_target(screener, target, cfg.pocket_cutoff)
                per["model"][target.name] = screening_metrics(scores, labels, cfg.seed)
            if cfg.ecfp_baseline and target.crystal_ligand is not None:
                per["ecfp4"][target.name] = screening_metrics(
                    ecfp_scores(target), labels, cfg.seed
                )
            run.log_metrics(
                step,
                target=target.name,
                **{k: v.get(target.name) for k, v in per.items()},
            )
        results = {
            name: {"per_target": v, "mean": mean_over_targets(v)}
            for name, v in per.items()
            if v
        }
        run.write_results(results)
    return run.path
