"""``tamis demo`` for screening: generated pockets and ligands, two-stage
training, screening of held-out targets, metrics and a report (about a minute
on 2 CPU cores, offline)."""

from __future__ import annotations

import logging
from pathlib import Path

from tamis.core.config import from_dict
from tamis.core.report import Report
from tamis.core.runs import Run
from tamis.screening.config import EvaluateConfig, TrainConfig
from tamis.screening.evaluate import run_evaluation
from tamis.screening.screen import Screener, pocket_from_files, write_ranking
from tamis.screening.synthetic import make_synthetic
from tamis.screening.train import load_trained, run_training

__all__ = ["run_demo", "DEMO_MODEL"]

log = logging.getLogger(__name__)

#: A CPU-sized model for the demo (the shipped configs use the ESM2-8M shape).
DEMO_MODEL = {
    "esm_layers": 2,
    "esm_hidden": 64,
    "esm_heads": 4,
    "esm_ffn": 128,
    "ligand_dim": 64,
    "ligand_layers": 3,
    "pocket_dim": 64,
    "fused_dim": 64,
    "embed_dim": 32,
    "bsp_dim": 32,
}


def run_demo(out: Path) -> dict[str, str]:
    """Generate data, train, screen held-out targets, write results and a report.

    Args:
        out: Folder for the generated data and run directories.

    Returns:
        Name -> output path.
    """
    out = Path(out)
    data = make_synthetic(out / "data", seed=0)

    # Two-stage training on generated activity pairs and complexes.
    train_cfg = from_dict(
        TrainConfig,
        {
            "name": "demo-train",
            "out": str(out),
            "seed": 0,
            "device": "cpu",
            "checkpoint_every": 25,
            "model": DEMO_MODEL,
            "stage1": {"activity": [str(data.activity)], "steps": 20, "batch_size": 16},
            "stage2": {
                "complexes": [str(data.complexes)],
                "steps": 40,
                "pockets_per_batch": 8,
                "probes": 2,
                "lr": 1e-3,
            },
        },
    )
    train_dir = run_training(train_cfg)

    # Zero-shot screening of the generated DUD-E style targets.
    eval_cfg = from_dict(
        EvaluateConfig,
        {
            "name": "demo-evaluate",
            "out": str(out),
            "checkpoint": str(train_dir),
            "targets": [str(t) for t in data.targets],
            "device": "cpu",
        },
    )
    eval_dir = run_evaluation(eval_cfg)
    results = Run.open(eval_dir).read_results()

    # Rank a SMILES library (with one bad record) against the first target.
    screener = Screener(load_trained(train_dir))
    pocket = pocket_from_files(
        data.targets[0] / "receptor.pdb", data.targets[0] / "crystal_ligand.sdf"
    )
    ranking, skipped = screener.screen_file(pocket, data.library, seed=0)
    ranked_csv = write_ranking(ranking, eval_dir / "ranked.csv")

    report = Report("tamis screening demo (generated data)")
    report.text(
        "Two-stage S²Drug training on generated data, then zero-shot "
        "screening of generated DUD-E style targets. Numbers are only a "
        "smoke test of the pipeline, not a benchmark."
    )
    for name, res in results.items():
        report.heading(name)
        rows = [
            [t, *(f"{m[k]:.3f}" for k in ("auroc", "bedroc", "ef1"))]
            for t, m in res["per_target"].items()
        ]
        rows.append(
            ["mean", *(f"{res['mean'][k]:.3f}" for k in ("auroc", "bedroc", "ef1"))]
        )
        report.table(["target", "AUROC", "BEDROC", "EF1%"], rows)
    report.text(f"Library screen: {len(ranking.names)} ranked, {skipped} skipped.")
    report_path = report.write(eval_dir / "report.html")
    return {
        "train_run": str(train_dir),
        "evaluate_run": str(eval_dir),
        "results": str(eval_dir / "results.json"),
        "ranked": str(ranked_csv),
        "report": str(report_path),
    }
