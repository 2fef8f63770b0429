"""SASRec and GRU4Rec speed, and SASRec accuracy, of tamis on Beauty and ML-100K.

Measures, for SASRec with full-softmax cross-entropy (hidden 64, 2 layers,
2 heads, inner 256, dropout 0.5, batch 256, max length 50, AdamW lr 1e-3) and
GRU4Rec (CE, embedding 64, GRU hidden 128, dropout 0.3, same batches):

* seconds per training epoch over ``--timing-epochs`` epochs, for each of
  ``--variants``: ``grouped`` (shuffled batches, each encoded in exact
  length groups, the default), ``plain`` (shuffled batches encoded as one
  block cut to the batch's longest history) and ``bucketed`` (batches
  re-sorted by length, which changes their composition);
* seconds per full-ranking validation pass (all items, history not masked);
* on Beauty, test NDCG@10 / HR@10 without history masking after early stopping
  on validation NDCG@10 (patience ``--patience``, at most ``--max-epochs``
  epochs or ``--budget-min`` minutes).

Writes ``benchmarks/results/rec_tamis_sasrec.json`` with the command line and
date. Timings depend on the machine's load; the JSON records the thread count,
CPU count and load average at the start and end.

Usage:
    python benchmarks/rec_tamis.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tamis.core.io import atomic_write_json
from tamis.core.progress import set_progress_enabled
from tamis.core.runs import seed_everything
from tamis.recsys.config import EvalConfig, TrainConfig
from tamis.recsys.data import leave_one_out, read_atomic, read_sequences
from tamis.recsys.evaluate import evaluate
from tamis.recsys.models import build_model
from tamis.recsys.train import fit_model

ROOT = Path(__file__).resolve().parents[1]
EVAL_BATCH = 256
SASREC = {
    "hidden": 64,
    "layers": 2,
    "heads": 2,
    "inner": 256,
    "dropout": 0.5,
    "attn_dropout": 0.5,
    "max_len": 50,
}
GRU4REC = {"hidden": 64, "gru_hidden": 128, "layers": 1, "dropout": 0.3, "max_len": 50}
ARGS = {"sasrec": SASREC, "gru4rec": GRU4REC}


def load(name: str, data_dir: Path):  # noqa: ANN201
    """Leave-one-out split of Beauty or ML-100K."""
    rec = data_dir / "recsys"
    if name == "beauty":
        data = read_sequences(rec / "beauty" / "Beauty.txt", name="beauty")
    else:
        data = read_atomic(rec / "ml-100k", "ml-100k")
    return leave_one_out(data)


def timing(  # noqa: ANN001
    split, epochs: int, variant: str, seed: int, model_name: str = "sasrec"
) -> dict:
    """Seconds per epoch and per validation pass of a fresh model."""
    seed_everything(seed)
    args = dict(ARGS[model_name])
    if variant != "grouped":
        args["length_groups"] = []
    bucket = variant == "bucketed"
    model = build_model(model_name, split.n_users, split.n_items, args)
    train = TrainConfig(
        epochs=epochs,
        batch_size=256,
        lr=1e-3,
        patience=100,
        eval_every=epochs,
        bucket_by_length=bucket,
    )
    evalc = EvalConfig(ks=[10], mask_history=False, batch_size=EVAL_BATCH)
    t0 = time.process_time()
    result = fit_model(
        model, split, train, evalc, "next-item", {"loss": "ce"}, seed=seed
    )
    cpu = time.process_time() - t0
    epoch_s = [h["train_seconds"] for h in result.history]
    epoch_cpu = [h["train_cpu_seconds"] for h in result.history]
    valid_s, valid_cpu = [], []
    for _ in range(2):
        metrics, _ = evaluate(model, split.valid, [10], False, EVAL_BATCH, 50)
        valid_s.append(metrics["seconds"])
        valid_cpu.append(metrics["cpu_seconds"])
    return {
        "model": model_name,
        "model_args": {**args, "length_groups": model.config.length_groups},
        "variant": variant,
        "train_cpu_seconds_per_epoch": epoch_cpu,
        "valid_cpu_seconds_per_pass": valid_cpu,
        "bucket_by_length": bucket,
        "epochs": epochs,
        "train_seconds_per_epoch": epoch_s,
        "train_seconds_per_epoch_mean": float(np.mean(epoch_s)),
        "process_cpu_seconds_total": cpu,
        "valid_seconds_per_pass": valid_s,
        "valid_seconds_min": float(min(valid_s)),
        "valid_ndcg@10_after": result.history[-1].get("valid_ndcg@10"),
    }


def eval_speed(split, seed: int, reps: int = 3) -> dict:  # noqa: ANN001
    """Full-ranking validation passes of a fresh SASRec at two batch sizes.

    Ranking cost does not depend on training (no top-K lists are built in
    validation), so an untrained model times the same work.
    """
    seed_everything(seed)
    model = build_model("sasrec", split.n_users, split.n_items, SASREC)
    out = {}
    for batch in (EVAL_BATCH, 2048):
        for mask in (False, True):
            wall, cpu = [], []
            for _ in range(reps):
                m, _ = evaluate(model, split.valid, [10], mask, batch, 50, topk=0)
                wall.append(m["seconds"])
                cpu.append(m["cpu_seconds"])
            out[f"batch{batch}_{'masked' if mask else 'unmasked'}"] = {
                "wall_seconds": wall,
                "cpu_seconds": cpu,
            }
    return out


def converge(split, args) -> dict:  # noqa: ANN001
    """Train to early stopping on validation; report unmasked test metrics."""
    seed_everything(args.seed)
    model = build_model("sasrec", split.n_users, split.n_items, SASREC)
    train = TrainConfig(
        epochs=args.max_epochs,
        batch_size=256,
        lr=1e-3,
        patience=args.patience,
        valid_metric="ndcg@10",
        bucket_by_length=args.bucket,
        time_budget_s=args.budget_min * 60,
    )
    evalc = EvalConfig(ks=[5, 10, 20], mask_history=False, batch_size=EVAL_BATCH)
    t0 = time.perf_counter()
    result = fit_model(
        model, split, train, evalc, "next-item", {"loss": "ce"}, seed=args.seed
    )
    wall = time.perf_counter() - t0
    test, _ = evaluate(model, split.test, [5, 10, 20], False, EVAL_BATCH, 50)
    test_masked, _ = evaluate(model, split.test, [5, 10, 20], True, EVAL_BATCH, 50)
    return {
        "bucket_by_length": args.bucket,
        "best_epoch": result.best_epoch,
        "best_valid_ndcg@10": result.best_metric,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "stopped_by_budget": result.stopped_by_budget,
        "wall_seconds": wall,
        "history": result.history,
        "test_unmasked": test,
        "test_masked": test_masked,
    }


def main() -> None:
    """Parse arguments, run the measurements, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=ROOT.parent / "shared" / "data"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/rec_tamis_sasrec.json"
    )
    parser.add_argument("--datasets", nargs="+", default=["beauty", "ml-100k"])
    parser.add_argument("--timing-epochs", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--budget-min", type=float, default=30.0)
    parser.add_argument(
        "--bucket", action="store_true", help="bucketing when converging"
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["timing", "converge"],
        help="timing, eval and/or converge; each updates its own keys of --out",
    )
    parser.add_argument("--threads", type=int, default=0, help="0 = torch default")
    parser.add_argument("--models", nargs="+", default=["sasrec"], choices=sorted(ARGS))
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["grouped", "plain", "bucketed"],
        choices=["grouped", "plain", "bucketed"],
        help="batch layouts timed (bucketed only on Beauty)",
    )
    parser.add_argument(
        "--note", default="", help="load conditions of the timing, for the JSON"
    )
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    set_progress_enabled(False)

    part_info = {
        "command": " ".join(["python", *sys.argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "note": args.note
            or "shared 2-core CPU machine; other jobs may have run at the same "
            "time (see the load averages)",
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_start": os.getloadavg(),
            "torch": torch.__version__,
        },
    }
    results: dict = {}

    def save() -> None:
        # Each part updates only its own keys, so two parts may run side by side.
        part_info["machine"]["load_average_now"] = os.getloadavg()
        out = json.loads(args.out.read_text()) if args.out.is_file() else {}
        out["model"] = {"name": "sasrec", "loss": "ce", **SASREC, "batch_size": 256}
        out["models"] = {name: {"loss": "ce", **ARGS[name]} for name in args.models}
        out["protocol"] = "leave-one-out, full ranking over all items, no history mask"
        for part, value in results.items():
            out[part] = {**part_info, **value}
        atomic_write_json(args.out, out)

    if "timing" in args.parts:
        results["timing"] = {}
        for name in args.datasets:
            split = load(name, args.data_dir)
            entry: dict = {"summary": {**split.data.summary(), **split.summary()}}
            results["timing"][name] = entry
            # Bucketing only pays on short-sequence data (ML-100K prefixes are
            # nearly all at the maximum length), so it is timed on Beauty only.
            for model_name in args.models:
                entry[model_name] = {}
                for variant in args.variants:
                    if variant == "bucketed" and name != "beauty":
                        continue
                    result = timing(
                        split, args.timing_epochs, variant, args.seed, model_name
                    )
                    entry[model_name][variant] = result
                    logging.info("%s %s %s: %s", name, model_name, variant, result)
                    save()
    if "eval" in args.parts:
        results["eval_speed"] = {}
        for name in args.datasets:
            split = load(name, args.data_dir)
            results["eval_speed"][name] = eval_speed(split, args.seed)
            logging.info("%s eval: %s", name, results["eval_speed"][name])
            save()
    if "converge" in args.parts:
        split = load("beauty", args.data_dir)
        results["converge_beauty"] = converge(split, args)
        save()
    print(json.dumps(results, indent=1, default=str)[:4000])


if __name__ == "__main__":
    main()
