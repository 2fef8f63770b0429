"""Collaborative-information study on Beauty, ML-100K and the Diginetica sample.

Stages (each resumable; outputs of finished stages are reused):

1. ``train``: Pop, item-KNN, GRU4Rec and SASRec per dataset with the
   recommendation core (neural models: short training, early stopping and
   model selection on the validation split); each model's test ranks and
   top-20 lists are saved under ``--work``.
2. ``study``: the full study per dataset (pair histogram H = 6, multiplicity
   tail, redundancy, test typing, model breakdowns), each in a fresh child
   process whose wall time and peak RSS are recorded.
3. ``ablation``: hop cap H in {2, 4, 6} and the window rule w = 1.
4. ``scale``: a generated data set of about 1M interactions over 100k items.

Writes ``benchmarks/results/collab.json`` and ``collab_report.html``.
Timings come from a shared 2-core CPU machine and vary with its load.

Usage: ``python benchmarks/collab.py --data-dir ../shared/data``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = ("pop", "itemknn", "gru4rec", "sasrec")
DATASETS = ("beauty", "ml-100k", "diginetica")
#: Training budget of the neural models per dataset (the machine is 2 shared,
#: heavily loaded cores): at most this many epochs, training stops after the
#: first epoch that ends past TIME_BUDGET_S, and training prefixes come from at
#: most TRAIN_USERS users (validation and test use every user).
EPOCHS = {"beauty": 3, "ml-100k": 3, "diginetica": 6}
TIME_BUDGET_S = {"beauty": 300.0, "ml-100k": 420.0, "diginetica": 300.0}
TRAIN_USERS = {"beauty": 2500, "ml-100k": 200, "diginetica": None}


def data_config(name: str, data_dir: Path) -> Any:
    """The rec core's DataConfig of each benchmark dataset."""
    from tamis.recsys.config import DataConfig

    rec = data_dir / "recsys"
    if name == "beauty":
        return DataConfig(format="sequences", path=str(rec / "beauty/Beauty.txt"))
    if name == "ml-100k":
        return DataConfig(format="atomic", path=str(rec / "ml-100k"), name="ml-100k")
    if name == "diginetica":
        log = rec / "diginetica-sample/sample_train-item-views.csv"
        return DataConfig(
            format="sessions", path=str(log), name="diginetica-sample", min_length=2
        )
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


def load_split(name: str, data_dir: Path) -> Any:
    """Read and leave-one-out split a dataset."""
    from tamis.recsys.data import make_split
    from tamis.recsys.data.load import load_data

    return make_split(load_data(data_config(name, data_dir)), "leave-one-out")


def training_subset(split: Any, max_users: int | None, seed: int) -> Any:
    """The split with training sequences kept for a random subset of users."""
    import dataclasses

    if max_users is None or max_users >= split.n_users:
        return split
    rng = np.random.default_rng(seed)
    keep = np.zeros(split.n_users, dtype=bool)
    keep[rng.choice(split.n_users, size=max_users, replace=False)] = True
    train = [s if keep[u] else s[:0] for u, s in enumerate(split.train)]
    return dataclasses.replace(split, train=train, _cache={})


def model_args(model: str) -> dict[str, Any]:
    """Hyperparameters of the neural models (the rec core's defaults otherwise)."""
    if model == "sasrec":
        return {"hidden": 64, "layers": 2, "heads": 2, "max_len": 50}
    if model == "gru4rec":
        return {"hidden": 64, "max_len": 50}
    return {}


# ---------------------------------------------------------------------------
# Stage 1: train and save predictions


def train_models(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Fit every model on one dataset; save test ranks and lists per model."""
    import torch

    from tamis.recsys.analysis.run import predictions_from_model
    from tamis.recsys.config import EvalConfig, TrainConfig
    from tamis.recsys.models import build_model
    from tamis.recsys.train import fit_model

    torch.set_num_threads(2)
    work = args.work / name
    work.mkdir(parents=True, exist_ok=True)
    split = None
    summary = {}
    for model_name in MODELS:
        info_path = work / f"{model_name}.json"
        if info_path.is_file():
            summary[model_name] = json.loads(info_path.read_text())
            continue
        split = split or load_split(name, args.data_dir)
        torch.manual_seed(args.seed)
        model = build_model(
            model_name, split.n_users, split.n_items, model_args(model_name)
        )
        start = time.perf_counter()
        info: dict[str, Any] = {"model_args": model_args(model_name)}
        if model.trainable:
            subset = training_subset(split, TRAIN_USERS[name], args.seed)
            train = TrainConfig(
                epochs=EPOCHS[name],
                time_budget_s=TIME_BUDGET_S[name],
                batch_size=256,
                lr=1e-3,
                patience=2,
                valid_metric="ndcg@10",
            )
            result = fit_model(
                model, subset, train, EvalConfig(ks=[10, 20]), seed=args.seed
            )
            info.update(
                epochs_run=result.epochs_run,
                best_epoch=result.best_epoch,
                best_valid_ndcg10=result.best_metric,
                epoch_budget=EPOCHS[name],
                time_budget_s=TIME_BUDGET_S[name],
                train_users=TRAIN_USERS[name] or split.n_users,
                train_prefixes=len(subset.training_samples(1)),
            )
        else:
            model.fit(split)
        info["fit_seconds"] = round(time.perf_counter() - start, 1)
        preds = predictions_from_model(model, split, model_name, topk=20)
        np.savez_compressed(
            work / f"{model_name}.npz", ranks=preds.ranks, topk=preds.topk
        )
        info["test_samples"] = int(len(preds.ranks))
        info_path.write_text(json.dumps(info, indent=2))
        summary[model_name] = info
        print(f"[{name}] {model_name}: {info}", flush=True)
    return summary


# ---------------------------------------------------------------------------
# Stage 2-4: studies in child processes


def child_study(args: argparse.Namespace) -> None:
    """Run one study in this (fresh) process; write its JSON to --child-out."""
    from tamis.recsys.analysis import (
        CollabData,
        ModelPredictions,
        StudySettings,
        planted_cluster_sequences,
        run_study,
    )

    start = time.perf_counter()
    settings = StudySettings(**json.loads(args.settings))
    if args.child == "synthetic":
        seqs = planted_cluster_sequences(
            n_items=100_000,
            n_clusters=500,
            n_sequences=100_000,
            min_len=5,
            max_len=15,
            cross_rate=0.05,
            popularity_exponent=1.0,
            seed=args.seed,
        )
        data = CollabData.leave_last_out(seqs, 100_000, "synthetic-1M")
        models = []
    else:
        data = CollabData.from_split(load_split(args.child, args.data_dir), args.child)
        models = []
        if args.with_models:
            for model_name in MODELS:
                path = args.work / args.child / f"{model_name}.npz"
                if not path.is_file():  # not trained (yet)
                    continue
                saved = np.load(path)
                models.append(
                    ModelPredictions(model_name, saved["ranks"], saved["topk"])
                )
    load_seconds = time.perf_counter() - start
    result = run_study(data, settings, models, show_progress=False)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["process"] = {
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "load_seconds": round(load_seconds, 2),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
    }
    Path(args.child_out).write_text(json.dumps(result))


def run_child(
    args: argparse.Namespace, dataset: str, settings: dict, tag: str, models: bool
) -> dict[str, Any]:
    """Run :func:`child_study` in a fresh interpreter; return its result."""
    out = args.work / f"study-{dataset}-{tag}.json"
    if out.is_file() and not (args.force and tag == "main"):
        return json.loads(out.read_text())
    cmd = [
        sys.executable,
        __file__,
        "--data-dir",
        str(args.data_dir),
        "--work",
        str(args.work),
        "--child",
        dataset,
        "--child-out",
        str(out),
        "--settings",
        json.dumps(settings),
        "--seed",
        str(args.seed),
    ]
    if models:
        cmd.append("--with-models")
    subprocess.run(cmd, check=True)
    result = json.loads(out.read_text())
    proc = result["process"]
    print(
        f"[{dataset}/{tag}] study {result['seconds']['total']:.1f} s, process "
        f"{proc['wall_seconds']:.1f} s wall, {proc['cpu_seconds']:.1f} s CPU, "
        f"peak RSS {proc['peak_rss_mb']} MB",
        flush=True,
    )
    return result


# ---------------------------------------------------------------------------
# Printing


def print_tables(result: dict[str, Any]) -> None:
    """Distribution tables and model breakdowns of one study."""
    ds, hist, typing = (
        result["dataset"],
        result["pair_histogram"],
        result["test_typing"],
    )
    print(f"\n== {ds['name']}: {ds['n_training_items']} items, {ds['n_edges']} edges")
    total = hist["total"]
    for d, c in hist["pairs"].items():
        print(f"  d={d} ({int(d) - 1}-hop): {c:>14,.0f}  {c / total:7.3%}")
    print(f"  beyond/none: {hist['beyond']:>12,.0f}  {hist['beyond'] / total:7.3%}")
    mult = result["multiplicity"]
    print(
        f"  co-occurrence: once {mult['once']:,}, twice {mult['twice']:,}, three "
        f"times {mult['three_times']:,}, max {mult['max']}"
    )
    print(f"  test samples: {typing['counts']}")
    print(f"  0-hop targets: {typing['share_0hop']:.1%}")
    for name, m in result["models"].items():
        shares = m["shares"]["pairs"]
        acc = m["accuracy"]
        line = " ".join(f"{k}={v:.3f}" for k, v in shares.items() if v)
        print(f"  {name:8s} top-10 pairs: {line}")
        for subset in ("all", "direct", "no-direct"):
            if subset in acc:
                row = acc[subset]
                print(
                    f"  {'':8s} {subset:9s} n={row['n']:6d} HR@20={row['HR@20']:.4f}"
                    f" NDCG@20={row['NDCG@20']:.4f}"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=ROOT / ".." / "shared" / "data"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-collab")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "collab.json")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument(
        "--stages", nargs="*", default=["train", "study", "ablation", "scale"]
    )
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--force", action="store_true", help="recompute the main studies"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--with-models", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_study(args)
        return 0
    if not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir}: no such folder")
    args.work.mkdir(parents=True, exist_ok=True)

    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": "shared 2-core CPU machine (timings vary with other users' load)",
        "datasets": previous.get("datasets", {}),
        "training": previous.get("training", {}),
        "ablation": previous.get("ablation", {}),
        "scale": previous.get("scale", {}),
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")

    main_settings = {"max_hops": 6, "ks": [10, 20], "share_k": 10}
    for name in args.datasets:
        if "train" in args.stages:
            report["training"][name] = train_models(name, args)
            save()
        else:  # what earlier train stages saved
            saved = sorted((args.work / name).glob("*.json"))
            report["training"][name] = {
                p.stem: json.loads(p.read_text()) for p in saved
            }
        if "study" in args.stages:
            result = run_child(args, name, main_settings, "main", models=True)
            report["datasets"][name] = result
            print_tables(result)
            save()
        if "ablation" in args.stages:
            rows = {}
            variants = [
                ("H=2", {"max_hops": 2}),
                ("H=4", {"max_hops": 4}),
                ("H=6", {"max_hops": 6}),
                ("H=6,w=1", {"max_hops": 6, "window": 1}),
            ]
            for tag, settings in variants:
                res = run_child(
                    args,
                    name,
                    {**settings, "redundancy_sources": 0},
                    tag.replace(",", "-"),
                    models=False,
                )
                rows[tag] = {
                    "pair_histogram": res["pair_histogram"],
                    "test_typing": res["test_typing"],
                    "n_edges": res["dataset"]["n_edges"],
                    "seconds": res["seconds"],
                }
            report["ablation"][name] = rows
            save()
    if "scale" in args.stages:
        # Sampled pair histogram; test typing of 20k samples, then of all.
        report["scale"] = {}
        for tag, samples in (("scale", 20_000), ("scale-all-samples", 0)):
            settings = {
                "max_hops": 6,
                "pair_sources": 2048,
                "max_samples": samples,
                "redundancy_sources": 64,
            }
            result = run_child(args, "synthetic", settings, tag, models=False)
            report["scale"][tag] = {
                key: result[key]
                for key in (
                    "settings",
                    "dataset",
                    "seconds",
                    "process",
                    "pair_histogram",
                    "multiplicity",
                    "test_typing",
                )
            }
            save()

    if report["datasets"]:
        from tamis.recsys.analysis.report import write_report

        write_report(
            list(report["datasets"].values()),
            args.out.with_name("collab_report.html"),
            "Collaborative-information study: Beauty, ML-100K, Diginetica sample",
        )
    save()
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
