"""``tamis demo`` part: a quick collaborative-information study on generated data.

Sequences come from the planted-cluster generator; Pop and item-KNN are fitted
through the recommendation core's runner, and the study breaks both down.
"""

from __future__ import annotations

from pathlib import Path

from tamis.core.io import atomic_write_text
from tamis.recsys.analysis.config import CollabConfig
from tamis.recsys.analysis.run import run_collab
from tamis.recsys.analysis.synthetic import planted_cluster_sequences
from tamis.recsys.config import DataConfig, RecTrainConfig

__all__ = ["run_demo", "write_sequences"]


def write_sequences(sequences: list, path: Path) -> Path:
    """Write sequences as ``uid i1 i2 ...`` lines (the ``sequences`` format)."""
    lines = [
        f"u{k} " + " ".join(f"i{int(i)}" for i in seq)
        for k, seq in enumerate(sequences)
    ]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def run_demo(out: Path) -> dict[str, str]:
    """Generate data, fit two models, run the study; return the output paths."""
    from tamis.recsys.train import run_training

    out = Path(out)
    seqs = planted_cluster_sequences(
        n_items=300,
        n_clusters=6,
        n_sequences=800,
        min_len=4,
        max_len=12,
        cross_rate=0.05,
        popularity_exponent=0.8,
        seed=0,
    )
    data_file = write_sequences(seqs, out / "data" / "clusters.txt")
    data = DataConfig(format="sequences", path=str(data_file), name="clusters")

    runs = []
    for model in ("pop", "itemknn"):
        cfg = RecTrainConfig(name=model, out=str(out / "runs"), data=data, model=model)
        run_dir = out / "runs" / model
        run_training(cfg, run_dir=run_dir)
        runs.append(str(run_dir))

    config = CollabConfig(out=str(out), data=data, runs=runs)
    run_collab(config, run_dir=out / "collab")
    return {
        "results": str(out / "collab" / "results.json"),
        "report": str(out / "collab" / "report.html"),
    }
