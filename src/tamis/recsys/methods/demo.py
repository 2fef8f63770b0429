"""SRA-CL demo: a generated topic catalogue, semantic retrieval, SASRec vs SRA-CL.

Runs offline in about a minute on two cores: item texts are built from topic
words, MiniLM embeds them (from its pip package), retrieval is checked against
the known answer (an item's neighbours are its topic's items; a prefix's
neighbours are other users with the same favourite topic), and a small SASRec
is trained with and without SRA-CL.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tamis.core.config import from_dict, param
from tamis.core.report import Report
from tamis.core.runs import Run

log = logging.getLogger(__name__)


@dataclass
class SRACLDemoConfig:
    """Settings of the SRA-CL demo (written to the run's config.yaml)."""

    users: int = param(160, "generated users", ge=10)
    topics: int = param(6, "latent topics", ge=2)
    items_per_topic: int = param(15, "items per topic", ge=3)
    epochs: int = param(4, "training epochs per model", ge=1)
    hidden: int = param(32, "SASRec hidden size", ge=8)
    encoder: str = param("minilm", "sentence encoder (minilm or tfidf[:dim])")
    seed: int = param(0, "seed")


def _purity(
    neighbours: np.ndarray, label: np.ndarray, query_label: np.ndarray
) -> float:
    """Share of valid neighbours whose label equals their query's label."""
    valid = neighbours >= 0
    same = label[np.where(valid, neighbours, 0)] == query_label[:, None]
    return float((same & valid).sum() / max(valid.sum(), 1))


def run_demo(out: Path) -> dict[str, str]:
    """Train SASRec and SASRec + SRA-CL on generated data; write results + report.

    Args:
        out: Folder for the run directory.

    Returns:
        ``{"run": <run dir>, "results": <results.json>, "report": <report.html>}``.
    """
    from tamis.recsys.config import EvalConfig, TrainConfig
    from tamis.recsys.data.splits import leave_one_out
    from tamis.recsys.models.base import build_model
    from tamis.recsys.semantic.pipeline import SemanticsConfig, semantics_for_split
    from tamis.recsys.semantic.synthetic import topic_catalogue
    from tamis.recsys.train import fit_model

    cfg = from_dict(SRACLDemoConfig, {})
    run = Run.create(out, "sracl", cfg, cfg.seed)
    data, topic = topic_catalogue(
        cfg.users, cfg.topics, cfg.items_per_topic, seed=cfg.seed
    )
    split = leave_one_out(data)
    sem_cfg = SemanticsConfig(
        cache_dir=str(run.path / "semantics"),
        encoder=cfg.encoder,
        prefix_embedding="item-mean",
        k=10,
        item_k=5,
    )

    # Semantics and the known-answer checks of retrieval.
    t0 = time.perf_counter()
    sem = semantics_for_split(split, sem_cfg)
    semantic_seconds = time.perf_counter() - t0
    favourite = np.asarray(
        [np.bincount(topic[s]).argmax() for s in data.sequences()]
    )  # (n_users,) most frequent topic of each user
    samples = split.training_samples()
    retrieval = {
        "item_neighbour_topic_purity": _purity(sem.item_neighbours, topic, topic),
        "user_neighbour_topic_purity": _purity(
            sem.prefix_neighbours, favourite[samples.users], favourite[samples.users]
        ),
        "chance_topic_purity": 1.0 / cfg.topics,
        "same_user_neighbour_share": sem.same_user_share(),
        "summary_source": sem.info["summary_source"],
        "encoder": sem.info["encoder"],
        "seconds": semantic_seconds,
    }

    # SASRec with and without SRA-CL, same seed and budget.
    model_args = {
        "hidden": cfg.hidden,
        "heads": 2,
        "inner": 2 * cfg.hidden,
        "max_len": 20,
    }
    train = TrainConfig(epochs=cfg.epochs, batch_size=128, patience=cfg.epochs)
    models: dict[str, Any] = {}
    for name, method, args in [
        ("SASRec", "next-item", {}),
        ("SASRec + SRA-CL", "sra-cl", {"semantics": _plain(sem_cfg), "seed": cfg.seed}),
    ]:
        torch.manual_seed(cfg.seed)
        model = build_model("sasrec", data.n_users, data.n_items, model_args)
        result = fit_model(
            model, split, train, EvalConfig(ks=[10, 20]), method, args, seed=cfg.seed
        )
        from tamis.recsys.train import final_results

        res = final_results(model, split, EvalConfig(ks=[10, 20]))
        models[name] = {
            "test": {
                k: res["test"][k] for k in ("hr@10", "ndcg@10", "hr@20", "ndcg@20")
            },
            "sec_per_epoch": _epoch_seconds(result.history),
            "epochs": result.epochs_run,
        }
        for h in result.history:
            run.log_metrics(
                h["epoch"],
                model=name,
                **{k: v for k, v in h.items() if isinstance(v, float)},
            )
    ratio = (
        models["SASRec + SRA-CL"]["sec_per_epoch"] / models["SASRec"]["sec_per_epoch"]
    )

    results = {
        "data": data.summary(),
        "training_samples": len(samples),
        "retrieval": retrieval,
        "models": models,
        "time_ratio_sracl_vs_sasrec": ratio,
        "note": "tiny generated data and a few epochs: a smoke-scale comparison",
    }
    run.write_results(results)
    report_path = _report(run.path / "report.html", results)
    return {
        "run": str(run.path),
        "results": str(run.path / "results.json"),
        "report": str(report_path),
    }


def _epoch_seconds(history: list[dict[str, Any]]) -> float:
    """Median training seconds per epoch, leaving out the first (warm-up) one."""
    seconds = [h["train_seconds"] for h in history]
    return float(np.median(seconds[1:] if len(seconds) > 1 else seconds))


def _plain(config: Any) -> dict[str, Any]:
    from tamis.core.config import to_dict

    return to_dict(config)


def _report(path: Path, results: dict[str, Any]) -> Path:
    """A short HTML report of the demo."""
    rep = Report("SRA-CL demo: topic catalogue")
    r = results["retrieval"]
    rep.heading("Semantic retrieval (known answer: same topic)")
    rep.text(f"User descriptions: {r['summary_source']}; encoder: {r['encoder']}.")
    rep.table(
        ["check", "value"],
        [
            ["item neighbours in the item's topic", r["item_neighbour_topic_purity"]],
            [
                "prefix neighbours with the same favourite topic",
                r["user_neighbour_topic_purity"],
            ],
            ["chance level", r["chance_topic_purity"]],
            ["prefix neighbours from the same user", r["same_user_neighbour_share"]],
        ],
    )
    rep.heading("Test, full ranking")
    rows = [
        [name, *m["test"].values(), m["sec_per_epoch"]]
        for name, m in results["models"].items()
    ]
    rep.table(["model", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "s/epoch"], rows)
    rep.text(
        f"SRA-CL time per epoch: {results['time_ratio_sracl_vs_sasrec']:.2f}x SASRec. "
        + results["note"]
        + "."
    )
    return rep.write(path)
